// Package module wires nomtstore into a Cosmos SDK v0.53 application: the
// baseapp option that replaces rootmulti/IAVL with the nomtstore
// CommitMultiStore, and the [nomtstore] section of app.toml.
//
// The option must come first in the baseapp options. Options after it call
// into the CommitMultiStore that is installed when they run: SetPruning,
// SetInterBlockCache and above all SetSnapshot, which hands the store to
// the snapshot manager. Placed after them, those calls would reach the
// default rootmulti store and be lost, and snapshots would be taken of an
// empty IAVL store. The option reads the settings those options carry
// (pruning, state-sync snapshot interval, inter-block cache) from app.toml
// itself, and refuses to run after SetSnapshot.
package module
