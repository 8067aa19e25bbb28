// Command dashboard renders the panels of the Grafana dashboard
// docs/grafana/nomtstore.json as one PNG, from a real Prometheus: each
// panel's queries go to Prometheus's query_range API, as Grafana would send
// them. Debian packages Prometheus but not Grafana; this is how the
// screenshot in docs/operators.md is made without one
// (scripts/dashboard-screenshot.sh runs it after `make demo`).
//
//	go run ./scripts/dashboard --prometheus http://127.0.0.1:9190 \
//		--start 2026-12-02T03:00:00Z --end 2026-12-02T03:05:00Z --out docs/img/dashboard.png
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"math"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/nomtstore/nomtstore/bench"
)

// The part of Grafana's dashboard model the renderer reads.
type dashboard struct {
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type        string `json:"type"`
	Title       string `json:"title"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

// series is one line of a panel.
type series struct {
	name   string
	points plotter.XYs // x: seconds since start
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

func run() error {
	prom := flag.String("prometheus", "http://127.0.0.1:9090", "Prometheus base URL")
	file := flag.String("dashboard", "docs/grafana/nomtstore.json", "Grafana dashboard JSON")
	startFlag := flag.String("start", "", "range start, RFC 3339 (default: end - 10m)")
	endFlag := flag.String("end", "", "range end, RFC 3339 (default: now)")
	step := flag.Duration("step", 5*time.Second, "query resolution")
	out := flag.String("out", "dashboard.png", "PNG to write")
	cols := flag.Int("cols", 3, "panels per row")
	flag.Parse()

	end := time.Now()
	if *endFlag != "" {
		t, err := time.Parse(time.RFC3339, *endFlag)
		if err != nil {
			return fmt.Errorf("--end: %w", err)
		}
		end = t
	}
	start := end.Add(-10 * time.Minute)
	if *startFlag != "" {
		t, err := time.Parse(time.RFC3339, *startFlag)
		if err != nil {
			return fmt.Errorf("--start: %w", err)
		}
		start = t
	}
	raw, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}

	var plots []*plot.Plot
	for _, p := range d.Panels {
		if p.Type != "timeseries" {
			continue
		}
		var lines []series
		for _, t := range p.Targets {
			// Every node: the dashboard's $instance variable at "All".
			expr := strings.ReplaceAll(t.Expr, "$instance", ".*")
			got, err := queryRange(*prom, expr, start, end, *step, t.LegendFormat)
			if err != nil {
				return fmt.Errorf("panel %q: %w", p.Title, err)
			}
			lines = append(lines, got...)
		}
		pl, err := draw1(p, lines)
		if err != nil {
			return err
		}
		plots = append(plots, pl)
	}
	if len(plots) == 0 {
		return errors.New("no timeseries panels")
	}
	return write(*out, plots, *cols)
}

// queryRange asks Prometheus for expr over [start, end], one series per
// label set, named by the panel's legend format.
func queryRange(base, expr string, start, end time.Time, step time.Duration, legend string) ([]series, error) {
	q := url.Values{
		"query": {expr},
		"start": {strconv.FormatInt(start.Unix(), 10)},
		"end":   {strconv.FormatInt(end.Unix(), 10)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	resp, err := http.Get(base + "/api/v1/query_range?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("%s: %w", expr, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", expr, body.Error)
	}
	var out []series
	for _, r := range body.Data.Result {
		s := series{name: legendName(legend, r.Metric)}
		for _, v := range r.Values {
			ts, _ := v[0].(float64)
			str, _ := v[1].(string)
			// A summary with no sample in its window reports "NaN", which
			// ParseFloat accepts and the plotter refuses.
			y, err := strconv.ParseFloat(str, 64)
			if err != nil || math.IsNaN(y) || math.IsInf(y, 0) {
				continue
			}
			s.points = append(s.points, plotter.XY{X: ts - float64(start.Unix()), Y: y})
		}
		if len(s.points) > 0 {
			out = append(out, s)
		}
	}
	return out, nil
}

var legendLabel = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

func legendName(format string, labels map[string]string) string {
	if format == "" {
		return labels["__name__"]
	}
	return legendLabel.ReplaceAllStringFunc(format, func(m string) string {
		return labels[legendLabel.FindStringSubmatch(m)[1]]
	})
}

var palette = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, {R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, {R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, {R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
}

// unitLabels name Grafana's units on the y axis.
var unitLabels = map[string]string{"ms": "ms", "bytes": "bytes", "percentunit": "fraction", "ops": "per second", "short": ""}

func draw1(p panel, lines []series) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = p.Title
	pl.X.Label.Text = "seconds"
	pl.Y.Label.Text = unitLabels[p.FieldConfig.Defaults.Unit]
	pl.Legend.Top = true
	pl.Y.Min = 0
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].name < lines[j].name })
	for i, s := range lines {
		l, err := plotter.NewLine(s.points)
		if err != nil {
			return nil, err
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.2)
		pl.Add(l)
		pl.Legend.Add(s.name, l)
	}
	if len(lines) == 0 {
		pl.Title.Text += " (no data)"
	}
	pl.Add(plotter.NewGrid())
	return pl, nil
}

func write(file string, plots []*plot.Plot, cols int) error {
	return bench.WritePlots(file, plots, cols, 380, 250)
}
