package module

import (
	"time"

	"github.com/cosmos/cosmos-sdk/telemetry"

	"github.com/nomtstore/nomtstore/cms"
)

// TelemetryObserver sends the store's figures to the SDK's telemetry; the
// metric names are listed at cms.MetricsObserver.
type TelemetryObserver = cms.SinkObserver[telemetrySink]

var _ cms.Observer = TelemetryObserver{}

// telemetrySink is the SDK v0.53 telemetry package.
type telemetrySink struct{}

func (telemetrySink) Enabled() bool { return telemetry.IsTelemetryEnabled() }

func (telemetrySink) IncrCounter(val float32, keys ...string) { telemetry.IncrCounter(val, keys...) }

func (telemetrySink) SetGauge(val float32, keys ...string) { telemetry.SetGauge(val, keys...) }

func (telemetrySink) MeasureSince(start time.Time, keys ...string) {
	telemetry.MeasureSince(start, keys...)
}
