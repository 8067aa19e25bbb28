// Package commitment is nomtstore's durable engine: N named trees (module
// stores) in one directory, each a trie of package trie whose pages live in
// one bitbox page table and whose values, leaf index and commit records live
// in one Pebble instance. A commit appends its page changes to the log and
// syncs them, then makes every tree's changes durable with ONE commit
// point: its Pebble batch appended to the same log as a commit frame and
// synced (Pebble runs without a log of its own). Recovery on open applies
// the commit frames Pebble had not flushed and replays the page changes
// they follow, and nothing else.
//
// It owns the staged changes and their working set (working.go), the
// commit protocol (commit.go), the on-disk layout of the directory and its
// recovery (open.go) and of Pebble keys (keys.go), the committed state
// readers see (state.go), the page store (pages.go), the caches
// (valuecache.go), reads at the latest and past versions (view.go,
// read.go, history.go, iter.go), pruning (prune.go) and rollback
// (rollback.go). Every version stays readable until pruned: what a commit
// supersedes is kept, keyed by the version that orphaned it, so deleting
// versions is deleting by version. It must never import the Cosmos SDK:
// the multistore sits on top of it, and one engine serves two SDK lines.
//
// Directory layout:
//
//	FORMAT       "nomtstore-format <n>\n": the directory's format version
//	pages.ht     the bitbox page table (format in bitbox/table.go)
//	wal/         the commits since the last checkpoint: WAL records and commit
//	             frames, in segments (wallog.go; the records' format in
//	             bitbox/wal.go)
//	pebble/      values, leaf index, history, tree registry, commit record (keys.go)
package commitment
