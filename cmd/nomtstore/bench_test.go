package main

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nomtstore/nomtstore/bench"
)

func TestBenchBadUsageExitsTwo(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown size", []string{"bench", "--size", "medium"}, `unknown size "medium"`},
		{"unknown store", []string{"bench", "--stores", "iavl-rocksdb"}, `unknown store kind "iavl-rocksdb"`},
		{"unknown workload", []string{"bench", "--workloads", "W1,W7"}, `unknown workload "W7"`},
		{"unknown W3 setting", []string{"bench", "--w3-settings", "custom,often"}, `unknown W3 pruning setting "often"`},
		{"tiny N", []string{"bench", "--n", "5"}, "N must be at least"},
		{"no blocks", []string{"bench", "--blocks", "0"}, "block counts must be at least 1"},
		{"no stores", []string{"bench", "--stores", ","}, "at least one store kind"},
		{"bad number", []string{"bench", "--n", "many"}, `invalid argument "many"`},
		{"stray argument", []string{"bench", "W1"}, `unknown command "W1"`},
		{"unknown warm-up", []string{"bench", "--warm-up", "auto"}, `--warm-up "auto": want on or off`},
		{"zero depth", []string{"bench", "--query-depths", "50,0"}, "each at least 1"},
		{"negative leaf cache", []string{"bench", "--leaf-cache-mb", "-1"}, "cache sizes cannot be negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runTool(t, "", tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", code, errOut, tc.want)
			}
			if out != "" {
				t.Fatalf("printed %q on stdout despite the error", out)
			}
		})
	}
}

// A tiny run of two stores through two workloads prints the table and
// writes it with the JSON and the chart, and the profiles asked for.
func TestBenchWritesReport(t *testing.T) {
	out, work, profiles := t.TempDir(), t.TempDir(), t.TempDir()
	code, stdout, stderr := runTool(t, "", "bench", "--n", "1000", "--t", "20", "--blocks", "2", "--w4-blocks", "2",
		"--preload-chunk", "400", "--quiet", "50ms", "--stores", "iavl-leveldb,nomt", "--workloads", "W1,W4", "--query-depths", "3,10",
		"--godebug", "madvdontneed=0", "--leaf-cache-mb", "64", "--cpuprofile-dir", profiles, "--dir", work, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	// The machine line is the child's: it ran with --godebug.
	for _, want := range []string{"size custom (N = 1000, T = 20", "GODEBUG=madvdontneed=0.", "nomtstore ran with a 64 MiB leaf cache", "## W1 transfers", "## W4 queries", "| iavl-leveldb | ", "| nomt | ", "1.0×"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout has no %q:\n%s", want, stdout)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "bench-custom.md"))
	if err != nil || string(md) != stdout {
		t.Errorf("bench-custom.md differs from stdout (%v)", err)
	}
	data, err := os.ReadFile(filepath.Join(out, "bench-custom.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(data, &rep); err != nil || len(rep.Results) != 4 || rep.Config.N != 1000 {
		t.Fatalf("JSON: %v, %d results, config %+v", err, len(rep.Results), rep.Config)
	}
	f, err := os.Open(filepath.Join(out, "bench-custom.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("chart: %v", err)
	}
	// The stores' directories are removed as the runs end.
	if entries, err := os.ReadDir(filepath.Join(work, "stores")); err != nil || len(entries) != 0 {
		t.Errorf("work directory left with %d entries (%v)", len(entries), err)
	}
	for _, kind := range []string{"iavl-leveldb", "nomt"} {
		for _, suffix := range []string{".pprof", "-allocs-before.pprof", "-allocs.pprof"} {
			name := kind + "-W1" + suffix
			if st, err := os.Stat(filepath.Join(profiles, name)); err != nil || st.Size() == 0 {
				t.Errorf("profile %s: %v", name, err)
			}
		}
	}
}

// A child runs with the bench's GODEBUG after the environment's own
// settings, so that --godebug decides where both name a setting.
func TestBenchChildEnvGoDebug(t *testing.T) {
	cases := []struct {
		name, own, flag string
		want            string // the child's GODEBUG; "" for none set
	}{
		{"flag alone", "", "madvdontneed=0", "GODEBUG=madvdontneed=0"},
		{"after the environment's", "gctrace=1", "madvdontneed=0", "GODEBUG=gctrace=1,madvdontneed=0"},
		{"empty flag keeps the environment's", "madvdontneed=1", "", "GODEBUG=madvdontneed=1"},
		{"neither", "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GODEBUG", tc.own)
			if tc.own == "" {
				_ = os.Unsetenv("GODEBUG")
			}
			var got []string
			marked := false
			for _, kv := range childEnv(tc.flag) {
				switch {
				case strings.HasPrefix(kv, "GODEBUG="):
					got = append(got, kv)
				case kv == benchChildEnv+"=1":
					marked = true
				}
			}
			if !marked {
				t.Error("the child is not marked as one")
			}
			// The last GODEBUG in the list is the one a process sees.
			last := ""
			if len(got) > 0 {
				last = got[len(got)-1]
			}
			if last != tc.want {
				t.Fatalf("child GODEBUG %q (all: %q), want %q", last, got, tc.want)
			}
		})
	}
}
