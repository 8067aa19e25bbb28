// Package pruning turns the Cosmos SDK's pruning settings into deletions of
// old nomtstore versions.
//
// Manager decides, with exactly the semantics of the SDK's own pruning
// manager (cosmossdk.io/store/pruning), up to which height a commit allows
// deleting: presets default (keep 362880, every 10 heights), everything
// (keep 2, every 10), nothing, and custom; heights that a state-sync
// snapshot still needs are held back until the snapshot is done, and that
// list survives restarts. Worker deletes in the background: it never makes a
// commit wait, coalesces requests, and retries a failed run with backoff,
// logging every failure and counting it in its stats, so pruning never
// stops silently.
//
// The engine (package commitment) knows nothing of the SDK: it gets plain
// version numbers from here.
package pruning
