// Package multistore is the CommitMultiStore of cosmossdk.io/store v1.1.2
// (SDK v0.53) over the nomtstore engine: what an SDK app installs in place
// of rootmulti and IAVL. IAVL-type stores are engine trees, committed
// together in one durable sync per block with the version's commit info
// (rootmulti's format, so the app hash and the ics23:simple proof of a
// store are the SDK's); transient, memory and DB stores are the SDK's own.
// Reads at past heights, /store queries with ICS23 proofs, state-sync
// snapshots, store upgrades, rollback and SDK pruning work as with
// rootmulti; where this store behaves differently, the method says so.
package multistore
