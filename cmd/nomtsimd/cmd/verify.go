package cmd

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func verifyCmd() *cobra.Command {
	var latest bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Recompute every retained root of every store from its pages and values (node stopped); exit 1 on a mismatch",
		Long: `Recompute every retained version's root of every store from the page table, the
leaf index and the values, and check every page's invariants. Each problem is printed
to stderr as "version V store S: page P[ slot N]: what is wrong", and the command
exits 1 if there is any. Progress goes to stderr: a bar on a terminal, a line every
10 seconds otherwise. Checking every retained version walks each store once per
version; --latest checks the latest version only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openOffline(cmd)
			if err != nil {
				return err
			}
			defer func() { _ = db.Close() }()
			out := &printer{w: cmd.OutOrStdout()}
			to, from := db.Version(), db.EarliestVersion()
			if latest {
				from = to
			}
			if to == 0 {
				out.printf("no version committed: nothing to verify\n")
				return out.err
			}
			names := db.Trees()
			progress := newProgress(cmd.ErrOrStderr(), int64(to-from+1)*int64(len(names)))
			var problems int
			var first string
			report := func(line string) {
				problems++
				if first == "" {
					first = line
				}
				progress.println(line)
			}
			for v := from; v <= to; v++ {
				for _, name := range names {
					violations, err := db.CheckTreeAt(name, v)
					if err != nil {
						report(fmt.Sprintf("version %d store %s: %v", v, name, err))
					}
					for _, violation := range violations {
						report(fmt.Sprintf("version %d store %s: %v", v, name, violation))
					}
					progress.step(v)
				}
			}
			progress.finish()
			if problems > 0 {
				noun := "problems"
				if problems == 1 {
					noun = "problem"
				}
				return fmt.Errorf("verify: %d %s in versions %d..%d (each printed above); the first: %s", problems, noun, from, to, first)
			}
			out.printf("verified versions %d..%d of %d stores: ok\n", from, to, len(names))
			return out.err
		},
	}
	cmd.Flags().BoolVar(&latest, "latest", false, "check the latest version only")
	// The default since every retained version is checked; kept so that
	// scripts written for the former default still run.
	cmd.Flags().Bool("all-versions", true, "check every retained version (the default)")
	_ = cmd.Flags().MarkHidden("all-versions")
	cmd.MarkFlagsMutuallyExclusive("latest", "all-versions")
	return cmd
}

// progress reports verify's progress on w: a bar when w is a terminal,
// otherwise a plain line at most every 10 seconds. Problems are printed
// through it, so that they do not mix with the bar.
type progress struct {
	bar *progressbar.ProgressBar // nil: plain lines
	w   io.Writer

	total, done int64
	last        time.Time
}

func newProgress(w io.Writer, total int64) *progress {
	p := &progress{w: w, total: total, last: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("verifying"),
			progressbar.OptionSetItsString("store checks"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

// step counts one store checked at version v.
func (p *progress) step(v uint64) {
	p.done++
	if p.bar != nil {
		_ = p.bar.Add(1)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= 10*time.Second && p.done < p.total {
		p.last = now
		_, _ = fmt.Fprintf(p.w, "verify: %d of %d store checks done (at version %d)\n", p.done, p.total, v)
	}
}

func (p *progress) println(line string) {
	if p.bar != nil {
		_, _ = progressbar.Bprintln(p.bar, line)
		return
	}
	_, _ = fmt.Fprintln(p.w, line)
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
