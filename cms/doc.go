// Package cms is the SDK-free half of nomtstore's CommitMultiStore, shared
// by the two SDK lines it serves: the v0.53 store (package multistore,
// cosmossdk.io/store v1.1.2) and the v0.54+ store (module storev2,
// github.com/cosmos/cosmos-sdk/store/v2 v2.0.0). Those lines' module
// graphs cannot be built together, so what both need lives here once, in
// terms of its own small types: the mounted stores and loading a version
// with store upgrades, one Commit of every engine tree in one durable sync
// with the version's commit info, reads at past versions, /store queries
// and the ICS23 proofs they carry, state-sync snapshot streams and their
// bounded-memory restore, pruning decisions and rollback.
//
// A line's adapter supplies what only the SDK has (Line): its transient,
// memory, object and DB stores, the encoding of a commit info (the same
// bytes in both lines), and the wrapper it serves each tree in. It
// converts its types at the boundary and nothing more.
package cms
