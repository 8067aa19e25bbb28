package cmd

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// phaseProgress shows a long job's phases: on a terminal, a bar per phase
// with keys, keys/s and ETA (a spinner with keys and keys/s when the
// phase's total is unknown, -1); otherwise a line every five seconds.
type phaseProgress struct {
	w        io.Writer
	job      string // the lines' prefix
	terminal bool
	bar      *progressbar.ProgressBar
	phase    string
	lastLine time.Time
}

func newPhaseProgress(w io.Writer, job string) *phaseProgress {
	f, ok := w.(*os.File)
	return &phaseProgress{w: w, job: job, terminal: ok && term.IsTerminal(int(f.Fd()))}
}

// update shows done of total keys in phase; detail (a store's name) goes
// on the lines.
func (p *phaseProgress) update(phase string, done, total int64, elapsed time.Duration, detail string) {
	if phase != p.phase {
		p.finish()
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
	line := fmt.Sprintf("%s: %s %s keys", p.job, phase, count(uint64(done)))
	if total >= 0 {
		line = fmt.Sprintf("%s: %s %s of %s keys", p.job, phase, count(uint64(done)), count(uint64(total)))
	}
	if secs := elapsed.Seconds(); secs > 0 {
		line += fmt.Sprintf(", %.0f keys/s since the start", float64(done)/secs)
	}
	if detail != "" {
		line += ", store " + detail
	}
	_, _ = fmt.Fprintln(p.w, line)
}

func (p *phaseProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		_, _ = fmt.Fprintln(p.w)
		p.bar = nil
	}
}
