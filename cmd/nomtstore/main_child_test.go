package main

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/nomtstore/nomtstore/bench"
)

// childDiesEnv names a store kind whose child process exits at once, as
// one killed by the OOM killer or a store's own os.Exit would.
const childDiesEnv = "NOMTSTORE_TEST_CHILD_DIES"

// TestMain lets the test binary stand in for the tool when the bench
// command runs a store kind in a child process (benchchild.go): the child
// is os.Executable(), which in tests is this binary.
func TestMain(m *testing.M) {
	if os.Getenv(benchChildEnv) != "" {
		if dies := os.Getenv(childDiesEnv); dies != "" && childKind(os.Args) == dies {
			os.Exit(3)
		}
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// childKind is the store kind of a child's command line.
func childKind(args []string) string {
	i := slices.Index(args, "--child-config")
	if i < 0 || i+1 >= len(args) {
		return ""
	}
	data, err := os.ReadFile(args[i+1])
	if err != nil {
		return ""
	}
	var cfg bench.Config
	if json.Unmarshal(data, &cfg) != nil || len(cfg.Kinds) != 1 {
		return ""
	}
	return cfg.Kinds[0]
}

// A store kind whose process dies fails alone: the others are measured
// and reported, and the run exits 1.
func TestBenchChildThatDiesFailsItsKindAlone(t *testing.T) {
	t.Setenv(childDiesEnv, "iavl-leveldb")
	out, work := t.TempDir(), t.TempDir()
	code, stdout, stderr := runTool(t, "", "bench", "--n", "1000", "--t", "20", "--blocks", "2",
		"--preload-chunk", "400", "--quiet", "50ms", "--stores", "iavl-leveldb,nomt", "--workloads", "W1",
		"--dir", work, "--out", out)
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	for _, want := range []string{"| iavl-leveldb | FAILED: its process failed (exit status 3)", "| nomt | "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout has no %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "| nomt | FAILED") {
		t.Errorf("nomt failed with the other kind:\n%s", stdout)
	}
}
