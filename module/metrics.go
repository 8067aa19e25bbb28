package module

import (
	"time"

	"github.com/cosmos/cosmos-sdk/telemetry"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/multistore"
	"github.com/nomtstore/nomtstore/pruning"
)

// TelemetryObserver sends the store's figures to the SDK's telemetry (the
// go-metrics global sink, exported to Prometheus when app.toml enables
// telemetry with a prometheus-retention-time). With telemetry disabled each
// call returns at once. Names, as Prometheus shows them (keys joined by
// "_", after app.toml's service-name prefix, if any):
//
// Commit phases, timers in milliseconds (Prometheus summaries), one sample
// per commit that has the phase (commitment.Phase*):
//
//	nomtstore_commit_checkpoint_wait_ms  waiting for a checkpoint (dirty pages over twice checkpoint-mb)
//	nomtstore_commit_working_roots_ms    the trie update (new roots and pages)
//	nomtstore_commit_plan_ms             buckets for new pages, table growth included
//	nomtstore_commit_table_grow_ms       a page table growth
//	nomtstore_commit_batch_ms            building the commit batch (values, history, WAL record)
//	nomtstore_commit_commit_point_ms     the commit point: the synced Pebble batch
//	nomtstore_commit_checkpoint_ms       background, every few commits: dirty pages written, table fsynced
//	nomtstore_commit_total_ms            the engine's Commit call
//
// Per commit, gauges of the last commit and counters of all of them:
//
//	nomtstore_commit_keys, nomtstore_commit_pages, nomtstore_commit_wal_bytes (gauges)
//	nomtstore_commits, nomtstore_pages_written, nomtstore_wal_bytes_written (counters)
//
// The page table, gauges after each commit:
//
//	nomtstore_table_load_factor     (full + tombstone buckets) / buckets
//	nomtstore_table_pages, nomtstore_table_buckets
//	nomtstore_table_dirty_pages     committed pages in memory until the next checkpoint
//	nomtstore_table_mean_probe      buckets probed per lookup, since the node started
//	nomtstore_table_longest_probe   the longest probe since the node started
//
// Versions and pruning, gauges after each commit:
//
//	nomtstore_versions_retained            latest - earliest + 1
//	nomtstore_pruning_lag                  versions the pruning options let go that are still kept
//	nomtstore_pruning_consecutive_failures
//
// and, after each run of the pruning worker:
//
//	nomtstore_pruning_runs, nomtstore_pruning_failures (counters)
//	nomtstore_pruning_run_ms (timer)
type TelemetryObserver struct{}

var _ multistore.Observer = TelemetryObserver{}

const metricPrefix = "nomtstore"

// CommitPhase implements commitment.Observer.
func (TelemetryObserver) CommitPhase(phase string, d time.Duration) {
	measure(d, "commit", phase+"_ms")
}

// Committed implements commitment.Observer.
func (TelemetryObserver) Committed(st commitment.CommitStats) {
	if !telemetry.IsTelemetryEnabled() {
		return
	}
	measure(st.Duration, "commit", "total_ms")
	gauge(float32(st.Keys), "commit", "keys")
	gauge(float32(st.Pages), "commit", "pages")
	gauge(float32(st.WALBytes), "commit", "wal_bytes")
	telemetry.IncrCounter(1, metricPrefix, "commits")
	telemetry.IncrCounter(float32(st.Pages), metricPrefix, "pages_written")
	telemetry.IncrCounter(float32(st.WALBytes), metricPrefix, "wal_bytes_written")
	gauge(float32(st.Table.LoadFactor), "table", "load_factor")
	gauge(float32(st.Table.Full), "table", "pages")
	gauge(float32(st.Table.Buckets), "table", "buckets")
	gauge(float32(st.Dirty), "table", "dirty_pages")
	gauge(float32(st.Table.MeanProbe), "table", "mean_probe")
	gauge(float32(st.Table.LongestProbe), "table", "longest_probe")
}

// PruneRun implements multistore.Observer.
func (TelemetryObserver) PruneRun(_ uint64, took time.Duration, err error) {
	if !telemetry.IsTelemetryEnabled() {
		return
	}
	measure(took, "pruning", "run_ms")
	telemetry.IncrCounter(1, metricPrefix, "pruning", "runs")
	if err != nil {
		telemetry.IncrCounter(1, metricPrefix, "pruning", "failures")
	}
}

// Versions implements multistore.Observer.
func (TelemetryObserver) Versions(latest, earliest uint64, st pruning.Stats) {
	if !telemetry.IsTelemetryEnabled() {
		return
	}
	retained := uint64(0)
	if earliest > 0 && latest >= earliest {
		retained = latest - earliest + 1
	}
	gauge(float32(retained), "versions", "retained")
	gauge(float32(st.Pending), "pruning", "lag")
	gauge(float32(st.ConsecutiveFailures), "pruning", "consecutive_failures")
}

func measure(d time.Duration, keys ...string) {
	if telemetry.IsTelemetryEnabled() {
		telemetry.MeasureSince(time.Now().Add(-d), append([]string{metricPrefix}, keys...)...)
	}
}

func gauge(v float32, keys ...string) {
	telemetry.SetGauge(v, append([]string{metricPrefix}, keys...)...)
}
