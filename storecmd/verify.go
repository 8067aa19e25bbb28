package storecmd

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// VerifyReport is `nomtstore verify --output json`. Problems are in it too
// (and not on stderr), so a script reads one document either way; the
// command still exits 1 when there is any.
type VerifyReport struct {
	FromVersion uint64          `json:"from_version"`
	ToVersion   uint64          `json:"to_version"`
	Stores      int             `json:"stores"`
	Checks      int64           `json:"checks"`
	TookMs      int64           `json:"took_ms"`
	OK          bool            `json:"ok"`
	Problems    []VerifyProblem `json:"problems"`
}

// VerifyProblem is one problem verify found.
type VerifyProblem struct {
	Version uint64 `json:"version"`
	Store   string `json:"store"`
	Problem string `json:"problem"`
}

func verifyCmd() *cobra.Command {
	var latest, full bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every retained version of every store against its root (node stopped); exit 1 on a problem",
		Long: `Recompute the latest version's root of every store from the page table, the key
index and the values, checking every page's invariants, and check every older retained
version by what it changed: each key it set or deleted is proven at that version and the
proof verified with ICS23 against the version's root, which covers every node the
version wrote, at the cost of that change rather than of the whole state. --full walks
every version whole instead (slow on a long history); --latest checks the latest only.
Each problem is printed to stderr as "version V store S: page P[ slot N]: what is wrong"
(with --output json, in the document's problems instead), and the command exits 1 if
there is any. Progress goes to stderr: a bar on a terminal, a line every 10 seconds
otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := OutputFormat(cmd)
			if err != nil {
				return err
			}
			db, _, err := openOffline(cmd)
			if err != nil {
				return err
			}
			defer func() { _ = db.Close() }()
			to, from := db.Version(), db.EarliestVersion()
			if latest {
				from = to
			}
			names := db.Trees()
			res := VerifyReport{FromVersion: from, ToVersion: to, Stores: len(names), Problems: []VerifyProblem{}}
			if to == 0 {
				res.FromVersion, res.OK = 0, true
				if format == OutputJSON {
					return WriteJSON(cmd.OutOrStdout(), res)
				}
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "no version committed: nothing to verify")
				return err
			}
			start := time.Now()
			progress := newProgress(cmd.ErrOrStderr(), int64(to-from+1)*int64(len(names)))
			report := func(v uint64, name string, problem any) {
				p := VerifyProblem{Version: v, Store: name, Problem: fmt.Sprint(problem)}
				res.Problems = append(res.Problems, p)
				if format == OutputText {
					progress.println(fmt.Sprintf("version %d store %s: %s", v, name, p.Problem))
				}
			}
			for v := from; v <= to; v++ {
				for _, name := range names {
					check := db.CheckTreeAt
					if v < to && !full {
						check = db.CheckTreeChangesAt
					}
					violations, err := check(name, v)
					if err != nil {
						report(v, name, err)
					}
					for _, violation := range violations {
						report(v, name, violation)
					}
					progress.step(v)
				}
			}
			progress.finish()
			res.Checks, res.TookMs = progress.done, time.Since(start).Milliseconds()
			res.OK = len(res.Problems) == 0
			if format == OutputJSON {
				if err := WriteJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				t := NewTable(cmd.OutOrStdout())
				t.Row("versions", "%d..%d", res.FromVersion, res.ToVersion)
				t.Row("stores", "%d", res.Stores)
				t.Row("checks", "%s store checks in %s", Count(uint64(res.Checks)), time.Duration(res.TookMs)*time.Millisecond)
				if res.OK {
					t.Row("result", "ok")
				} else {
					n := uint64(len(res.Problems))
					t.Row("result", "%s %s (each printed above)", Count(n), Plural(n, "problem", "problems"))
				}
				if err := t.Flush(); err != nil {
					return err
				}
			}
			if !res.OK {
				n := uint64(len(res.Problems))
				first := res.Problems[0]
				return fmt.Errorf("verify: %d %s in versions %d..%d; the first: version %d store %s: %s",
					n, Plural(n, "problem", "problems"), from, to, first.Version, first.Store, first.Problem)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&latest, "latest", false, "check the latest version only")
	cmd.Flags().BoolVar(&full, "full", false, "walk every retained version whole, not only what each changed")
	// The default since every retained version is checked; kept so that
	// scripts written for the former default still run.
	cmd.Flags().Bool("all-versions", true, "check every retained version (the default)")
	_ = cmd.Flags().MarkHidden("all-versions")
	cmd.MarkFlagsMutuallyExclusive("latest", "all-versions")
	cmd.MarkFlagsMutuallyExclusive("latest", "full")
	AddOutputFlag(cmd)
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
