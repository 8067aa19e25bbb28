package cms

import (
	"time"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/pruning"
)

// MetricsSink is the SDK's telemetry package as the observer uses it
// (github.com/cosmos/cosmos-sdk/telemetry: the same functions in both SDK
// lines), which each line's module passes in.
type MetricsSink interface {
	Enabled() bool
	IncrCounter(val float32, keys ...string)
	SetGauge(val float32, keys ...string)
	MeasureSince(start time.Time, keys ...string)
}

// MetricsObserver sends the store's figures to the SDK's telemetry (the
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
type MetricsObserver struct{ Sink MetricsSink }

var _ Observer = MetricsObserver{}

const metricPrefix = "nomtstore"

// CommitPhase implements commitment.Observer.
func (o MetricsObserver) CommitPhase(phase string, d time.Duration) {
	o.measure(d, "commit", phase+"_ms")
}

// Committed implements commitment.Observer.
func (o MetricsObserver) Committed(st commitment.CommitStats) {
	if !o.Sink.Enabled() {
		return
	}
	o.measure(st.Duration, "commit", "total_ms")
	o.gauge(float32(st.Keys), "commit", "keys")
	o.gauge(float32(st.Pages), "commit", "pages")
	o.gauge(float32(st.WALBytes), "commit", "wal_bytes")
	o.count(1, "commits")
	o.count(float32(st.Pages), "pages_written")
	o.count(float32(st.WALBytes), "wal_bytes_written")
	o.gauge(float32(st.Table.LoadFactor), "table", "load_factor")
	o.gauge(float32(st.Table.Full), "table", "pages")
	o.gauge(float32(st.Table.Buckets), "table", "buckets")
	o.gauge(float32(st.Dirty), "table", "dirty_pages")
	o.gauge(float32(st.Table.MeanProbe), "table", "mean_probe")
	o.gauge(float32(st.Table.LongestProbe), "table", "longest_probe")
}

// PruneRun implements Observer.
func (o MetricsObserver) PruneRun(_ uint64, took time.Duration, err error) {
	if !o.Sink.Enabled() {
		return
	}
	o.measure(took, "pruning", "run_ms")
	o.count(1, "pruning", "runs")
	if err != nil {
		o.count(1, "pruning", "failures")
	}
}

// Versions implements Observer.
func (o MetricsObserver) Versions(latest, earliest uint64, st pruning.Stats) {
	if !o.Sink.Enabled() {
		return
	}
	retained := uint64(0)
	if earliest > 0 && latest >= earliest {
		retained = latest - earliest + 1
	}
	o.gauge(float32(retained), "versions", "retained")
	o.gauge(float32(st.Pending), "pruning", "lag")
	o.gauge(float32(st.ConsecutiveFailures), "pruning", "consecutive_failures")
}

func (o MetricsObserver) measure(d time.Duration, keys ...string) {
	if o.Sink.Enabled() {
		o.Sink.MeasureSince(time.Now().Add(-d), append([]string{metricPrefix}, keys...)...)
	}
}

func (o MetricsObserver) gauge(v float32, keys ...string) {
	o.Sink.SetGauge(v, append([]string{metricPrefix}, keys...)...)
}

func (o MetricsObserver) count(v float32, keys ...string) {
	o.Sink.IncrCounter(v, append([]string{metricPrefix}, keys...)...)
}

// SinkObserver is MetricsObserver over the zero value of a sink type, so
// that a line's observer needs no fields: `type TelemetryObserver =
// cms.SinkObserver[telemetrySink]`, used as TelemetryObserver{}.
type SinkObserver[S MetricsSink] struct{}

func (SinkObserver[S]) observer() MetricsObserver {
	var sink S
	return MetricsObserver{Sink: sink}
}

// CommitPhase implements commitment.Observer.
func (o SinkObserver[S]) CommitPhase(phase string, d time.Duration) {
	o.observer().CommitPhase(phase, d)
}

// Committed implements commitment.Observer.
func (o SinkObserver[S]) Committed(st commitment.CommitStats) { o.observer().Committed(st) }

// PruneRun implements Observer.
func (o SinkObserver[S]) PruneRun(to uint64, took time.Duration, err error) {
	o.observer().PruneRun(to, took, err)
}

// Versions implements Observer.
func (o SinkObserver[S]) Versions(latest, earliest uint64, st pruning.Stats) {
	o.observer().Versions(latest, earliest, st)
}
