package module

import (
	"time"

	"github.com/cosmos/cosmos-sdk/telemetry"

	"github.com/nomtstore/nomtstore/cms"
	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/pruning"
)

// TelemetryObserver sends the store's figures to the SDK's telemetry; the
// metric names are listed at cms.MetricsObserver.
type TelemetryObserver struct{}

var _ cms.Observer = TelemetryObserver{}

func (TelemetryObserver) observer() cms.MetricsObserver {
	return cms.MetricsObserver{Sink: telemetrySink{}}
}

// CommitPhase implements commitment.Observer.
func (o TelemetryObserver) CommitPhase(phase string, d time.Duration) {
	o.observer().CommitPhase(phase, d)
}

// Committed implements commitment.Observer.
func (o TelemetryObserver) Committed(st commitment.CommitStats) { o.observer().Committed(st) }

// PruneRun implements cms.Observer.
func (o TelemetryObserver) PruneRun(to uint64, took time.Duration, err error) {
	o.observer().PruneRun(to, took, err)
}

// Versions implements cms.Observer.
func (o TelemetryObserver) Versions(latest, earliest uint64, st pruning.Stats) {
	o.observer().Versions(latest, earliest, st)
}

// telemetrySink is the SDK v0.53 telemetry package.
type telemetrySink struct{}

func (telemetrySink) Enabled() bool { return telemetry.IsTelemetryEnabled() }

func (telemetrySink) IncrCounter(val float32, keys ...string) { telemetry.IncrCounter(val, keys...) }

func (telemetrySink) SetGauge(val float32, keys ...string) { telemetry.SetGauge(val, keys...) }

func (telemetrySink) MeasureSince(start time.Time, keys ...string) {
	telemetry.MeasureSince(start, keys...)
}
