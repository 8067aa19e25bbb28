package pruning

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"cosmossdk.io/store/pruning/types"
)

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
	opts             types.PruningOptions // REQUIRES: mu
	snapshotInterval uint64               // REQUIRES: mu
	// snapshotHeights starts with the last height whose snapshot, and
	// every one before it, is done; pruning may go up to the next snapshot
	// height - 1. Later heights are snapshots done out of order.
	snapshotHeights []int64 // REQUIRES: mu
}

// NewManager returns a manager that prunes nothing until SetOptions.
func NewManager(meta MetaStore, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		meta: meta, logger: logger,
		opts:            types.NewPruningOptions(types.PruningNothing),
		snapshotHeights: []int64{0},
	}
}

// SetOptions sets the pruning options.
func (m *Manager) SetOptions(opts types.PruningOptions) {
	m.mu.Lock()
	m.opts = opts
	m.mu.Unlock()
}

// Options returns the pruning options in force.
func (m *Manager) Options() types.PruningOptions {
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
	if m.opts.GetPruningStrategy() == types.PruningNothing || height <= 0 {
		return nil
	}
	heights := append(slices.Clone(m.snapshotHeights), height)
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
	return nil
}

// LoadSnapshotHeights reads back the snapshot heights recorded before a
// restart.
func (m *Manager) LoadSnapshotHeights() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.opts.GetPruningStrategy() == types.PruningNothing {
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
	}
	return nil
}

// PruneHeight returns the height that committing height allows pruning up
// to (inclusive), or 0 when this commit prunes nothing.
func (m *Manager) PruneHeight(height int64) int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.opts.GetPruningStrategy() == types.PruningNothing || m.opts.Interval == 0 {
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
	// Up to just before the snapshot after the last one done.
	return min(pruneHeight, m.snapshotHeights[0]+int64(m.snapshotInterval)-1)
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
