package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/nomtstore/nomtstore/bench"
)

// Each store kind runs in a process of its own: a store's heap, caches and
// goroutines outlive its Close (memiavl keeps its whole tree in the heap,
// IAVL its node caches), and in one process the next store paid for them,
// in garbage collection on the same two cores and in a peak RSS that was
// the previous store's. A child gets its configuration and returns its
// report through files.

// benchChildEnv marks a child run: the test binary, which is the child in
// tests, runs the tool instead of its tests when it is set.
const benchChildEnv = "NOMTSTORE_BENCH_CHILD"

// childFlags are a child's: its configuration (one store kind) and where
// its report goes.
type childFlags struct {
	config, report string
}

// runChild is a child's run: the configuration from its file, the report
// to its file, whether or not a store failed (the parent reports those).
func runChild(flags childFlags, dir, profileDir string, progress io.Writer) error {
	data, err := os.ReadFile(flags.config)
	if err != nil {
		return failed("%v", err)
	}
	var cfg bench.Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return failed("reading the child's configuration %s: %v", flags.config, err)
	}
	cfg.Dir, cfg.ProfileDir, cfg.Progress = dir, profileDir, progress
	rep, err := bench.Run(cfg)
	if err != nil {
		return failed("%v", err)
	}
	if err := rep.WriteJSON(flags.report); err != nil {
		return failed("%v", err)
	}
	return nil
}

// childEnv is the environment of a child: the parent's, marked as a child,
// with goDebug (--godebug) after the parent's own GODEBUG settings (the
// later wins). Every store kind runs with the same, so the ratios stay
// fair. Go's defaults unless asked: GODEBUG=madvdontneed=0 (freed heap
// pages left mapped) took a W1 run at 1M keys from ~66k page faults to
// ~18k, but every kind's peak RSS then counts the memory it freed (nomt's
// at 10M keys read 7.1 GiB against 2.9), which would make that column
// mean something else than in every run before (docs/benchmarks.md).
func childEnv(goDebug string) []string {
	env := append(os.Environ(), benchChildEnv+"=1")
	if goDebug == "" {
		return env
	}
	if own := os.Getenv("GODEBUG"); own != "" {
		goDebug = own + "," + goDebug
	}
	return append(env, "GODEBUG="+goDebug)
}

// runIsolated runs cfg's store kinds one after another, each in a child
// process with goDebug (childEnv), and joins their reports as bench.Run
// would have. A child that dies (a store that panics a goroutine, runs out
// of memory, or exits) fails its kind alone. afterKind is called with the
// report so far.
func runIsolated(cfg bench.Config, goDebug string, progress io.Writer, afterKind func(*bench.Report)) (*bench.Report, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	rep := &bench.Report{Config: cfg}
	for _, kind := range cfg.Kinds {
		child, err := runKind(exe, cfg, kind, goDebug, progress)
		switch {
		case err != nil:
			_, _ = fmt.Fprintf(progress, "%s: FAILED: %v\n", kind, err)
			for _, w := range workloadNames(cfg) {
				rep.Results = append(rep.Results, bench.Result{Workload: w, Kind: kind, Error: err.Error()})
			}
		default:
			if rep.Machine.Date == "" {
				rep.Machine = child.Machine
			}
			rep.Results = append(rep.Results, child.Results...)
		}
		if afterKind != nil {
			afterKind(rep)
		}
	}
	return rep, nil
}

// runKind runs one store kind in a child process and returns its report.
func runKind(exe string, cfg bench.Config, kind, goDebug string, progress io.Writer) (*bench.Report, error) {
	work := filepath.Join(cfg.Dir, kind+".child")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(work) }()
	one := cfg
	one.Kinds = []string{kind}
	data, err := json.Marshal(one)
	if err != nil {
		return nil, err
	}
	flags := childFlags{config: filepath.Join(work, "config.json"), report: filepath.Join(work, "report.json")}
	if err := os.WriteFile(flags.config, data, 0o644); err != nil {
		return nil, err
	}
	args := []string{"bench", "--child-config", flags.config, "--child-report", flags.report,
		"--dir", filepath.Join(work, "stores")}
	if cfg.ProfileDir != "" {
		args = append(args, "--cpuprofile-dir", cfg.ProfileDir)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = childEnv(goDebug)
	cmd.Stdout, cmd.Stderr = progress, progress
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("its process failed (%w); its log is above", err)
	}
	data, err = os.ReadFile(flags.report)
	if err != nil {
		return nil, fmt.Errorf("its process left no report: %w", err)
	}
	var rep bench.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, errors.Join(errors.New("its report is unreadable"), err)
	}
	return &rep, nil
}

// workloadNames are the tables cfg's run prints, by their result names.
func workloadNames(cfg bench.Config) []string {
	var names []string
	for _, w := range cfg.Workloads {
		if w != bench.W3 {
			names = append(names, w)
			continue
		}
		for _, setting := range cfg.W3Settings {
			names = append(names, w+"/"+setting)
		}
	}
	return names
}
