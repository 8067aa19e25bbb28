package storecmd

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// PhaseProgress shows a long job's phases: on a terminal, a bar per phase
// with keys, keys/s and ETA (a spinner with keys and keys/s when the
// phase's total is unknown, -1); otherwise a line every five seconds.
type PhaseProgress struct {
	w        io.Writer
	job      string // the lines' prefix
	terminal bool
	bar      *progressbar.ProgressBar
	phase    string
	lastLine time.Time
}

// NewPhaseProgress shows job's phases on w.
func NewPhaseProgress(w io.Writer, job string) *PhaseProgress {
	f, ok := w.(*os.File)
	return &PhaseProgress{w: w, job: job, terminal: ok && term.IsTerminal(int(f.Fd()))}
}

// Update shows done of total keys in phase; detail (a store's name) goes
// on the lines.
func (p *PhaseProgress) Update(phase string, done, total int64, elapsed time.Duration, detail string) {
	if phase != p.phase {
		p.Finish()
		p.phase = phase
		if p.terminal {
			p.bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(p.w),
				progressbar.OptionSetDescription(phase),
				progressbar.OptionSetItsString("keys"),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
			)
		}
	}
	if p.bar != nil {
		_ = p.bar.Set64(done)
		return
	}
	if time.Since(p.lastLine) < 5*time.Second && done != total {
		return
	}
	p.lastLine = time.Now()
	line := fmt.Sprintf("%s: %s %s keys", p.job, phase, Count(uint64(done)))
	if total >= 0 {
		line = fmt.Sprintf("%s: %s %s of %s keys", p.job, phase, Count(uint64(done)), Count(uint64(total)))
	}
	if secs := elapsed.Seconds(); secs > 0 {
		line += fmt.Sprintf(", %.0f keys/s since the start", float64(done)/secs)
	}
	if detail != "" {
		line += ", store " + detail
	}
	_, _ = fmt.Fprintln(p.w, line)
}

// Terminal reports whether the progress is drawn as bars (its writer is
// a terminal): a command then quiets the log lines the bars stand for.
func (p *PhaseProgress) Terminal() bool { return p.terminal }

// Finish ends the current phase's bar.
func (p *PhaseProgress) Finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		_, _ = fmt.Fprintln(p.w)
		p.bar = nil
	}
}
