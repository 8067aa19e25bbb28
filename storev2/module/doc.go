// Package module wires nomtstore into a Cosmos SDK v0.54+ application
// (store/v2 v2.0.0, CometBFT v0.39): the baseapp option that replaces
// rootmulti/IAVL with the nomtstore CommitMultiStore of storev2/multistore,
// reading the same app.toml settings as the v0.53 line's option
// (github.com/nomtstore/nomtstore/module; the [nomtstore] section is
// package appconfig).
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
