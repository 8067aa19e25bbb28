package bench

import (
	"errors"
	"fmt"
	"image/color"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// kindColors keeps one color per store kind across every panel.
var kindColors = map[string]color.RGBA{
	KindIAVLLevelDB: {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	KindIAVLPebble:  {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	KindNomt:        {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	KindNomtEngine:  {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	KindMemIAVL:     {R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

// ErrNothingToChart is WriteChart's error for a report without blocks (a run of W5 alone).
var ErrNothingToChart = errors.New("bench: no blocks to chart")

// WriteChart draws commit latency per block for each store, one panel per
// workload (log scale: the stores differ by an order of magnitude), and
// W3's disk size per block under each pruning setting, as a PNG.
func (r *Report) WriteChart(file string) error {
	var panels []*plot.Plot
	for _, name := range r.workloadNames() {
		if name == W5 {
			continue
		}
		p, err := r.latencyPanel(name)
		if err != nil {
			return err
		}
		if p != nil {
			panels = append(panels, p)
		}
	}
	for _, name := range r.workloadNames() {
		if strings.HasPrefix(name, W3+"/") {
			p, err := r.diskPanel(name)
			if err != nil {
				return err
			}
			if p != nil {
				panels = append(panels, p)
			}
		}
	}
	if len(panels) == 0 {
		return ErrNothingToChart
	}
	cols := min(3, len(panels)) // a run of one or two workloads gets no empty tiles
	return WritePlots(file, panels, cols, 420, 300)
}

// WritePlots draws plots in a grid of cols columns, each tile w by h
// points, into a PNG file.
func WritePlots(file string, plots []*plot.Plot, cols int, w, h float64) error {
	rows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range plots {
		grid[i/cols][i%cols] = p
	}
	img := vgimg.New(vg.Points(float64(cols)*w), vg.Points(float64(rows)*h))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(12), PadY: vg.Points(12),
		PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(8)}
	canvases := plot.Align(grid, tiles, dc)
	for i := range grid {
		for j, p := range grid[i] {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func (r *Report) latencyPanel(workload string) (*plot.Plot, error) {
	return r.panel(workload, fmt.Sprintf("%s: commit per block (size %s)", workload, r.Config.Size), "WorkingHash + Commit, ms (log)", true,
		func(b Block) float64 { return b.HashMs + b.CommitMs })
}

func (r *Report) diskPanel(workload string) (*plot.Plot, error) {
	return r.panel(workload, fmt.Sprintf("%s: disk size per block", workload), "MiB", false,
		func(b Block) float64 { return mib(b.DiskBytes) })
}

// panel plots y of each block of workload, one line per store kind; nil
// if no kind has blocks there.
func (r *Report) panel(workload, title, yLabel string, logY bool, y func(Block) float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "block"
	p.Y.Label.Text = yLabel
	p.Legend.Top = true
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	lines := 0
	for _, kind := range r.Config.Kinds {
		res := r.find(workload, kind)
		if res == nil || len(res.Blocks) == 0 {
			continue
		}
		pts := make(plotter.XYs, len(res.Blocks))
		for i, b := range res.Blocks {
			pts[i].X, pts[i].Y = float64(i+1), y(b)
			if logY {
				pts[i].Y = max(pts[i].Y, 0.01) // a log axis has no zero
			}
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		line.Color = kindColors[kind]
		line.Width = vg.Points(1.2)
		p.Add(line)
		p.Legend.Add(kind, line)
		lines++
	}
	if lines == 0 {
		return nil, nil
	}
	p.Add(plotter.NewGrid())
	return p, nil
}
