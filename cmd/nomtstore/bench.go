package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nomtstore/nomtstore/bench"
	"github.com/nomtstore/nomtstore/commitment"
)

func newBenchCommand() *cobra.Command {
	var (
		size, dir, out, stores, workloads, warmUp, goDebug string
		overrides                                          bench.Config
		child                                              childFlags
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run the benchmark workloads against nomtstore, IAVL v1 and memiavl, side by side",
		Long: `Run workloads W1-W5 of docs/benchmarks.md (transfers, app-shaped stores, pruning,
queries while committing, state sync) against nomtstore, through its
CommitMultiStore and through the engine's API, against IAVL v1 through
the SDK's rootmulti store on goleveldb and on pebble, and against Cronos's
memiavl with Cronos's defaults, one store after another with the same keys
and operations, each store kind in a process of its own. Prints a markdown table with every figure's ratio to IAVL
v1 on goleveldb, and writes it with a JSON file of every block and a PNG
chart of commit latency per block to --out.

Sizes: quick (N = 100k accounts, T = 500 transfers per block, W1 and W4
only: a few minutes), small (N = 1M, T = 2,500) and large (N = 10M,
T = 5,000). The flags below override a size's figures. Preloads, and the
small blocks W4 commits first so that every store holds 1,000 versions,
are not timed. Exit status 1 if any store failed a workload.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if child.config != "" {
				return runChild(child, dir, overrides.ProfileDir, cmd.ErrOrStderr())
			}
			cfg, err := bench.SizeConfig(size)
			if err != nil {
				return err
			}
			flags := cmd.Flags()
			for name, set := range map[string]func(){
				"n": func() { cfg.N = overrides.N }, "t": func() { cfg.T = overrides.T },
				"blocks": func() { cfg.Blocks = overrides.Blocks }, "w3-blocks": func() { cfg.W3Blocks = overrides.W3Blocks },
				"w4-blocks": func() { cfg.W4Blocks = overrides.W4Blocks }, "query-depths": func() { cfg.QueryDepths = overrides.QueryDepths },
				"history-t": func() { cfg.HistoryT = overrides.HistoryT }, "seed": func() { cfg.Seed = overrides.Seed },
				"preload-chunk": func() { cfg.PreloadChunk = overrides.PreloadChunk }, "quiet": func() { cfg.Quiet = overrides.Quiet },
				"w3-settings":   func() { cfg.W3Settings = overrides.W3Settings },
				"leaf-cache-mb": func() { cfg.LeafCacheMB = overrides.LeafCacheMB }, "value-cache-mb": func() { cfg.ValueCacheMB = overrides.ValueCacheMB },
			} {
				if flags.Changed(name) {
					set()
				}
			}
			if flags.Changed("n") || flags.Changed("t") {
				cfg.Size = "custom"
			}
			// A size's own lists (quick runs W1 and W4 only) unless named.
			if flags.Changed("stores") {
				cfg.Kinds = splitList(stores)
			}
			if flags.Changed("workloads") {
				cfg.Workloads = splitList(workloads)
			}
			if cfg.WarmUp, err = parseWarmUp(warmUp); err != nil {
				return err
			}
			cfg.ProfileDir = overrides.ProfileDir
			if cfg.ProfileDir != "" {
				if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
					return failed("%v", err)
				}
			}
			if dir == "" {
				if dir, err = os.MkdirTemp("", "nomtstore-bench-"); err != nil {
					return failed("%v", err)
				}
				defer func() { _ = os.RemoveAll(dir) }()
			}
			cfg.Dir = filepath.Join(dir, "stores")
			cfg.Progress = cmd.ErrOrStderr()
			if err := cfg.Validate(); err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return failed("%v", err)
			}
			base := filepath.Join(out, "bench-"+cfg.Size)
			cfg.AfterKind = func(rep *bench.Report) {
				// What is done so far, in case a later store kills the run.
				if err := errors.Join(rep.WriteJSON(base+".json"), writeMarkdownFile(rep, base+".md")); err != nil {
					_, _ = fmt.Fprintf(cmd.ErrOrStderr(), "writing the partial report: %v\n", err)
				}
			}
			afterKind := cfg.AfterKind
			cfg.AfterKind = nil
			rep, err := runIsolated(cfg, goDebug, cmd.ErrOrStderr(), afterKind)
			if err != nil {
				return failed("%v", err)
			}
			return writeReport(cmd, rep, base)
		},
	}
	f := cmd.Flags()
	f.StringVar(&size, "size", "small", "workload size: quick, small or large")
	f.IntVar(&overrides.N, "n", 0, "accounts preloaded (W2: keys over its ten stores)")
	f.IntVar(&overrides.T, "t", 0, "transactions per block")
	f.IntVar(&overrides.Blocks, "blocks", 0, "timed blocks of W1 and W2")
	f.IntVar(&overrides.W3Blocks, "w3-blocks", 0, "timed blocks of each W3 pruning setting")
	f.IntVar(&overrides.W4Blocks, "w4-blocks", 0, "timed blocks of W4")
	f.IntSliceVar(&overrides.QueryDepths, "query-depths", nil, "how far below the latest height W4 reads, comma-separated (default 50,1000)")
	f.IntVar(&overrides.HistoryT, "history-t", 0, "transfers in each untimed block that W4 commits first to reach the deepest query depth (default 10)")
	f.Uint64Var(&overrides.Seed, "seed", 0, "seed of the keys and operations")
	f.IntVar(&overrides.PreloadChunk, "preload-chunk", 0, "keys per preload commit")
	f.DurationVar(&overrides.Quiet, "quiet", 0, "how long the disk must stay quiet before and after each timed run (default 1s)")
	f.StringVar(&stores, "stores", strings.Join(bench.Kinds, ","), "store kinds, comma-separated")
	f.StringVar(&workloads, "workloads", strings.Join(bench.Workloads, ","), "workloads, comma-separated (default for size quick: W1,W4)")
	f.StringSliceVar(&overrides.W3Settings, "w3-settings", nil, "W3's pruning settings, comma-separated (default nothing,everything,custom)")
	f.StringVar(&dir, "dir", "", "work directory for the stores (default: a temporary directory, removed after)")
	f.StringVar(&overrides.ProfileDir, "cpuprofile-dir", "", "write a CPU profile of each timed run (preloads excluded) to this directory, with allocation profiles taken before and after it (go tool pprof -diff_base)")
	f.StringVar(&goDebug, "godebug", "", "GODEBUG settings every store kind's process runs with, after the environment's (e.g. madvdontneed=0; docs/operators.md)")
	f.StringVar(&warmUp, "warm-up", "on", "nomtstore's warm-up of staged keys' pages (commitment.Options.WarmUp): on or off")
	f.IntVar(&overrides.LeafCacheMB, "leaf-cache-mb", 0, "nomtstore's leaf cache in MiB (app.toml leaf-cache-mb; 0: the store's default)")
	f.IntVar(&overrides.ValueCacheMB, "value-cache-mb", 0, "nomtstore's value cache in MiB (app.toml value-cache-mb; 0: the store's default)")
	f.StringVar(&out, "out", "bench-results", "directory for bench-<size>.md, .json and .png")
	f.StringVar(&child.config, "child-config", "", "a child run's configuration (each store kind runs in a process of its own)")
	f.StringVar(&child.report, "child-report", "", "where a child run writes its report")
	_ = f.MarkHidden("child-config")
	_ = f.MarkHidden("child-report")
	return cmd
}

func parseWarmUp(s string) (commitment.WarmUp, error) {
	switch s {
	case "on":
		return commitment.WarmUpOn, nil
	case "off":
		return commitment.WarmUpOff, nil
	}
	return 0, fmt.Errorf("--warm-up %q: want on or off", s)
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// writeReport prints the markdown table and writes it, the JSON and the
// chart next to base.
func writeReport(cmd *cobra.Command, rep *bench.Report, base string) error {
	if err := rep.WriteMarkdown(cmd.OutOrStdout()); err != nil {
		return failed("%v", err)
	}
	written := base + ".md, " + base + ".json"
	chartErr := rep.WriteChart(base + ".png")
	if errors.Is(chartErr, bench.ErrNothingToChart) {
		chartErr = nil // W5 alone: nothing per block to draw
	} else if chartErr == nil {
		written += ", " + base + ".png"
	}
	err := errors.Join(writeMarkdownFile(rep, base+".md"), rep.WriteJSON(base+".json"), chartErr)
	if err != nil {
		return failed("writing the report: %v", err)
	}
	_, _ = fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", written)
	if rep.Failed() {
		return failed("some stores failed a workload: see the table")
	}
	return nil
}

func writeMarkdownFile(rep *bench.Report, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	return errors.Join(rep.WriteMarkdown(f), f.Close())
}
