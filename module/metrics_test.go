package module

import (
	"fmt"
	"strings"
	"testing"
	"time"

	storetypes "cosmossdk.io/store/types"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/hashicorp/go-metrics"

	"github.com/cosmos/cosmos-sdk/server"
	"github.com/cosmos/cosmos-sdk/telemetry"
	simtestutil "github.com/cosmos/cosmos-sdk/testutil/sims"

	"github.com/nomtstore/nomtstore/multistore"
)

// installSink makes an in-memory sink the global go-metrics sink, as the
// SDK's telemetry does when app.toml enables it, and puts things back at the
// end of the test. Telemetry stays disabled until the test enables it.
func installSink(t *testing.T) *metrics.InmemSink {
	t.Helper()
	sink := metrics.NewInmemSink(time.Hour, time.Hour)
	cfg := metrics.DefaultConfig("")
	cfg.EnableHostname, cfg.EnableRuntimeMetrics = false, false
	if _, err := metrics.NewGlobal(cfg, sink); err != nil {
		t.Fatal(err)
	}
	disable := func() {
		if _, err := telemetry.New(telemetry.Config{}); err != nil { // Enabled false: turns telemetry off
			t.Fatal(err)
		}
	}
	disable()
	t.Cleanup(func() {
		disable()
		_, _ = metrics.NewGlobal(cfg, &metrics.BlackholeSink{})
	})
	return sink
}

// nomtMetrics is what the sink holds under the nomtstore prefix, by kind.
type nomtMetrics struct {
	gauges   map[string]float32
	counters map[string]metrics.AggregateSample
	samples  map[string]metrics.AggregateSample
}

func collect(sink *metrics.InmemSink) nomtMetrics {
	m := nomtMetrics{gauges: map[string]float32{}, counters: map[string]metrics.AggregateSample{}, samples: map[string]metrics.AggregateSample{}}
	for _, interval := range sink.Data() {
		interval.RLock()
		for name, g := range interval.Gauges {
			if strings.HasPrefix(name, "nomtstore.") {
				m.gauges[name] = g.Value
			}
		}
		for name, c := range interval.Counters {
			if strings.HasPrefix(name, "nomtstore.") {
				m.counters[name] = *c.AggregateSample
			}
		}
		for name, s := range interval.Samples {
			if strings.HasPrefix(name, "nomtstore.") {
				m.samples[name] = *s.AggregateSample
			}
		}
		interval.RUnlock()
	}
	return m
}

// TestTelemetryMetrics: the store the option installs reports its commits,
// page table, versions and pruning to the SDK's telemetry, and nothing
// while telemetry is off.
func TestTelemetryMetrics(t *testing.T) {
	sink := installSink(t)
	appOpts := simtestutil.AppOptionsMap{
		server.FlagPruning: "custom", server.FlagPruningKeepRecent: "2", server.FlagPruningInterval: "10",
	}
	opt, db := StoreOption(t.TempDir(), appOpts, dbm.NewMemDB())
	app := newBaseApp(t, opt)
	s := app.CommitMultiStore().(*multistore.Store)
	bank := storetypes.NewKVStoreKey("bank")
	s.MountStoreWithDB(bank, storetypes.StoreTypeIAVL, nil)
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	commit := func(v int) {
		kv := s.GetKVStore(bank)
		for i := range 200 {
			kv.Set(fmt.Appendf(nil, "k%d-%d", v, i), []byte("value"))
		}
		s.Commit()
	}

	commit(1)
	// The SDK's telemetry switch is a plain global: a background
	// checkpoint must be done before the test flips it.
	if err := s.Engine().WaitFlushed(); err != nil {
		t.Fatal(err)
	}
	if m := collect(sink); len(m.gauges)+len(m.counters)+len(m.samples) > 0 {
		t.Fatalf("metrics with telemetry off: %+v", m)
	}

	telemetry.EnableTelemetry()
	const commits = 24 // pruning runs at 10 and 20
	for v := 2; v <= commits; v++ {
		commit(v)
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.PruningStats().Runs < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := s.PruningStats(); st.Runs < 2 || st.Failures > 0 {
		t.Fatalf("pruning: %+v", st)
	}
	commit(commits + 1) // reports the versions after pruning
	earliest := s.Engine().EarliestVersion()
	if earliest <= 1 {
		t.Fatalf("nothing pruned: earliest %d", earliest)
	}
	retained := float32(commits + 1 - earliest + 1)
	if err := db.Close(); err != nil { // checkpoints what is left
		t.Fatal(err)
	}
	m := collect(sink)
	t.Logf("gauges %v", m.gauges)

	const observed = commits // versions 2..25
	for _, phase := range []string{"working_roots", "plan", "batch", "commit_point", "total"} {
		name := "nomtstore.commit." + phase + "_ms"
		if got := m.samples[name]; got.Count != observed || got.Min < 0 || got.Max <= 0 {
			t.Errorf("%s: %d samples (min %v, max %v), want %d", name, got.Count, got.Min, got.Max, observed)
		}
	}
	// Checkpoints come every few commits, and at Close.
	if got := m.samples["nomtstore.commit.checkpoint_ms"]; got.Count < 1 || got.Max <= 0 {
		t.Errorf("nomtstore.commit.checkpoint_ms: %d samples (max %v)", got.Count, got.Max)
	}
	if got := m.counters["nomtstore.commits"]; got.Sum != observed {
		t.Errorf("nomtstore.commits counted %v, want %d", got.Sum, observed)
	}
	if got := m.counters["nomtstore.pages_written"]; got.Sum < observed {
		t.Errorf("nomtstore.pages_written counted %v over %d commits", got.Sum, observed)
	}
	if got := m.counters["nomtstore.wal_bytes_written"]; got.Sum < observed*4096 {
		t.Errorf("nomtstore.wal_bytes_written counted %v over %d commits", got.Sum, observed)
	}
	if got := m.counters["nomtstore.pruning.runs"]; got.Sum < 2 {
		t.Errorf("nomtstore.pruning.runs counted %v", got.Sum)
	}
	if got := m.samples["nomtstore.pruning.run_ms"]; got.Count < 2 {
		t.Errorf("nomtstore.pruning.run_ms: %d samples", got.Count)
	}
	if _, failed := m.counters["nomtstore.pruning.failures"]; failed {
		t.Errorf("pruning failures counted: %+v", m.counters["nomtstore.pruning.failures"])
	}
	gauges := []struct {
		name     string
		min, max float32
	}{
		{"nomtstore.commit.keys", 200, 200},
		{"nomtstore.commit.pages", 1, 1 << 20},
		{"nomtstore.commit.wal_bytes", 4096, 1 << 30},
		{"nomtstore.table.load_factor", 1e-6, 0.75},
		{"nomtstore.table.pages", 1, 1 << 20},
		{"nomtstore.table.buckets", 1, 1 << 30},
		{"nomtstore.table.mean_probe", 1, 256},
		{"nomtstore.table.longest_probe", 1, 256},
		{"nomtstore.versions.retained", retained, retained},
		{"nomtstore.pruning.lag", 0, 0},
		{"nomtstore.pruning.consecutive_failures", 0, 0},
	}
	for _, g := range gauges {
		v, ok := m.gauges[g.name]
		if !ok || v < g.min || v > g.max {
			t.Errorf("%s = %v (set: %v), want %v..%v", g.name, v, ok, g.min, g.max)
		}
	}
}
