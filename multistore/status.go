package multistore

// Dir is the store's directory (the engine's files: page table, WAL
// directory, Pebble directory).
func (s *Store) Dir() string { return s.dir }

// SnapshotInterval is the state-sync snapshot interval whose heights are
// held back from pruning.
func (s *Store) SnapshotInterval() uint64 { return s.pruner.SnapshotInterval() }
