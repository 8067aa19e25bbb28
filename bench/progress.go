package bench

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows a phase's progress: a bar on a terminal, otherwise a
// line when the phase starts, at each tenth of it, and when it ends.
type progress struct {
	bar         *progressbar.ProgressBar // nil: plain lines
	w           io.Writer                // nil: silent
	what, unit  string
	start       time.Time
	done, total int64
}

func newProgress(w io.Writer, total int64, what, unit string) *progress {
	p := &progress{w: w, what: what, unit: unit, start: time.Now(), total: total}
	if w == nil {
		return p
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionSetItsString(unit),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		return p
	}
	_, _ = fmt.Fprintf(w, "%s: %d %s...\n", what, total, unit)
	return p
}

func (p *progress) add(n int64) {
	if p.bar != nil {
		_ = p.bar.Add64(n)
		return
	}
	before := p.done
	p.done += n
	if p.w != nil && p.total > 0 && p.done < p.total && p.done*10/p.total > before*10/p.total {
		elapsed := time.Since(p.start)
		_, _ = fmt.Fprintf(p.w, "%s: %d of %d %s in %v (%.1f/s)\n", p.what, p.done, p.total, p.unit,
			elapsed.Round(time.Second), float64(p.done)/elapsed.Seconds())
	}
}

func (p *progress) finish() {
	switch {
	case p.bar != nil:
		_ = p.bar.Finish()
		p.bar = nil
	case p.w != nil:
		_, _ = fmt.Fprintf(p.w, "%s: done in %v\n", p.what, time.Since(p.start).Round(time.Millisecond))
		p.w = nil
	}
}
