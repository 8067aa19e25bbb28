package pruning

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"sync"
)

// Options are the SDK's pruning options (pruning, pruning-keep-recent,
// pruning-interval), as both SDK lines' adapters pass them.
type Options struct {
	// Nothing is the "nothing" strategy: every version is kept, and no
	// snapshot height is recorded.
	Nothing bool
	// KeepRecent is how many versions below the latest are kept.
	KeepRecent uint64
	// Interval is how many commits pass between two prunings.
	Interval uint64
}

// MetaStore keeps the manager's records durably (the engine's PutMeta and
// GetMeta).
type MetaStore interface {
	GetMeta(name string) ([]byte, error)
	PutMeta(name string, value []byte) error
}

// snapshotHeightsRecord names the record of the snapshot heights held back.
const snapshotHeightsRecord = "pruning/snapshot-heights"

// Manager decides which heights may be pruned.
type Manager struct {
	meta   MetaStore
	logger *slog.Logger

	mu               sync.RWMutex
	opts             Options // REQUIRES: mu
	snapshotInterval uint64  // REQUIRES: mu
	// snapshotHeights starts with the last height whose snapshot, and
	// every one before it, is done; pruning may go up to the next snapshot
	// height - 1. Later heights are snapshots done out of order.
	snapshotHeights []int64 // REQUIRES: mu
	// inflight are the heights of snapshots started (AnnounceSnapshotHeight)
	// and not done, ascending: pruning stays below the first. Not durable:
	// no snapshot is in flight after a restart.
	inflight []int64 // REQUIRES: mu
	// distrustReloaded is store/v2's rule for the heights read back after
	// a restart (DistrustAfterRestart); reloaded says they are in force.
	distrustReloaded bool // REQUIRES: mu
	reloaded         bool // REQUIRES: mu
}

// NewManager returns a manager that prunes nothing until SetOptions.
func NewManager(meta MetaStore, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		meta: meta, logger: logger,
		opts:            Options{Nothing: true},
		snapshotHeights: []int64{0},
	}
}

// SetOptions sets the pruning options.
func (m *Manager) SetOptions(opts Options) {
	m.mu.Lock()
	m.opts = opts
	m.mu.Unlock()
}

// Options returns the pruning options in force.
func (m *Manager) Options() Options {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.opts
}

// SetSnapshotInterval sets the state-sync snapshot interval (0: none).
func (m *Manager) SetSnapshotInterval(interval uint64) {
	m.mu.Lock()
	m.snapshotInterval = interval
	m.mu.Unlock()
}

// SnapshotInterval returns the state-sync snapshot interval.
func (m *Manager) SnapshotInterval() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.snapshotInterval
}

// HandleSnapshotHeight records that the snapshot at height is done, so the
// heights it held back may be pruned; the record is durable before it
// returns. It does nothing under "nothing" or for a height <= 0.
func (m *Manager) HandleSnapshotHeight(height int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.opts.Nothing || height <= 0 {
		return nil
	}
	if i := slices.Index(m.inflight, height); i >= 0 {
		m.inflight = slices.Delete(m.inflight, i, i+1)
	}
	current := m.snapshotHeights
	if m.reloaded {
		// The heights read back are dropped for the first snapshot done.
		current = nil
	}
	heights := append(slices.Clone(current), height)
	slices.Sort(heights)
	// Drop the leading run of consecutive snapshots but its last one.
	k := 1
	for ; k < len(heights); k++ {
		if heights[k] != heights[k-1]+int64(m.snapshotInterval) {
			break
		}
	}
	heights = heights[k-1:]
	if err := m.meta.PutMeta(snapshotHeightsRecord, encodeHeights(heights)); err != nil {
		return fmt.Errorf("pruning: recording snapshot height %d: %w", height, err)
	}
	m.snapshotHeights = heights
	m.reloaded = false
	return nil
}

// DistrustAfterRestart applies store/v2's rule to the snapshot heights
// read back by LoadSnapshotHeights, which runs at every load (a restart, a
// rollback, a state-sync restore): the snapshot interval may have changed
// since they were recorded, so until the next snapshot is done pruning
// stays below the last height recorded rather than the next snapshot's. (The
// v0.53 line's manager trusts them; each line's adapter matches its SDK.)
func (m *Manager) DistrustAfterRestart() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.distrustReloaded = true
}

// AnnounceSnapshotHeight records that a snapshot of height has started
// (store/v2's snapshot manager says so before it takes one): pruning stays
// below it until HandleSnapshotHeight. It does nothing under "nothing" or
// for a height <= 0.
func (m *Manager) AnnounceSnapshotHeight(height int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.opts.Nothing || height <= 0 || slices.Contains(m.inflight, height) {
		return
	}
	m.inflight = append(m.inflight, height)
	slices.Sort(m.inflight)
}

// LoadSnapshotHeights reads back the snapshot heights recorded before a
// restart.
func (m *Manager) LoadSnapshotHeights() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.opts.Nothing {
		return nil
	}
	b, err := m.meta.GetMeta(snapshotHeightsRecord)
	if err != nil {
		return fmt.Errorf("pruning: reading the snapshot heights: %w", err)
	}
	heights, err := decodeHeights(b)
	if err != nil {
		return err
	}
	if len(heights) > 0 {
		m.snapshotHeights = heights
		if m.distrustReloaded {
			m.snapshotHeights = []int64{slices.Max(heights)}
			m.reloaded = true
		}
	}
	return nil
}

// PruneHeight returns the height that committing height allows pruning up
// to (inclusive), or 0 when this commit prunes nothing.
func (m *Manager) PruneHeight(height int64) int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.opts.Nothing || m.opts.Interval == 0 {
		return 0
	}
	if height%int64(m.opts.Interval) != 0 || height <= int64(m.opts.KeepRecent) {
		return 0
	}
	pruneHeight := height - 1 - int64(m.opts.KeepRecent)
	if m.snapshotInterval == 0 {
		return pruneHeight
	}
	if len(m.snapshotHeights) == 0 {
		return 0
	}
	// Up to just before the snapshot after the last one done, and below
	// any snapshot still being taken.
	next := m.snapshotHeights[0] + int64(m.snapshotInterval)
	if m.reloaded {
		next = m.snapshotHeights[0]
	}
	to := min(pruneHeight, next-1)
	if len(m.inflight) > 0 {
		to = min(to, m.inflight[0]-1)
	}
	return max(to, 0)
}

func encodeHeights(heights []int64) []byte {
	b := make([]byte, 0, 8*len(heights))
	for _, h := range heights {
		b = binary.BigEndian.AppendUint64(b, uint64(h))
	}
	return b
}

func decodeHeights(b []byte) ([]int64, error) {
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("pruning: snapshot heights record of %d bytes", len(b))
	}
	heights := make([]int64, 0, len(b)/8)
	for i := 0; i < len(b); i += 8 {
		h := int64(binary.BigEndian.Uint64(b[i:]))
		if h < 0 {
			return nil, fmt.Errorf("pruning: negative snapshot height %d in the record", h)
		}
		heights = append(heights, h)
	}
	return heights, nil
}
