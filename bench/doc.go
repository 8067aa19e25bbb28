// Package bench is the benchmark harness of docs/benchmarks.md: the
// same deterministic workloads (W1 transfers, W2 app-shaped stores, W3
// pruning, W4 queries while committing, W5 state sync) run one store after
// another (Run: in one process; nomtstore bench: each store kind in a
// process of its own), against nomtstore through its CommitMultiStore
// and through the engine's own API, against IAVL v1 through the SDK's
// rootmulti store on goleveldb and on pebble, and against Cronos's memiavl
// with Cronos's defaults (the peer to beat). Only ratios measured side by
// side in one run are meant to be compared; the report prints them against
// IAVL v1 on goleveldb, what SDK chains run by default.
//
// Every store sees the same keys and operations for a seed, and the
// workloads check what they read (a transfer from a missing account, a
// proof that does not verify or a restored store with another app hash
// fails the run), so a fast store cannot be fast by doing less.
package bench
