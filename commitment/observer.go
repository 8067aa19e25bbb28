package commitment

import (
	"time"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
)

// Observer receives the engine's commit figures, for metrics (the SDK
// side sends them to its telemetry; the engine imports no metrics
// library). The engine calls it synchronously from the committing
// goroutine (sometimes under the DB's read lock) and from the background
// checkpoint: implementations must be safe for concurrent use, fast, and
// must not call the DB.
type Observer interface {
	// CommitPhase reports how long one phase of the commit protocol took
	// (the Phase names). A phase that has nothing to do is not reported.
	// Rollback, which commits with the same protocol, reports its commit
	// point and checkpoints too.
	CommitPhase(phase string, d time.Duration)
	// Committed reports a commit once its version is durable (its pages
	// are written to the page table at a later checkpoint).
	Committed(stats CommitStats)
}

// The phases of a commit, in order (the protocol is at the top of
// commit.go).
const (
	// PhaseCheckpointWait: a commit waiting for the running checkpoint
	// because the dirty pages passed twice their budget.
	PhaseCheckpointWait = "checkpoint_wait"
	// PhaseWorkingRoots: the trie update of the staged changes (new roots
	// and pages, and the values they supersede), in WorkingRoots or, when
	// nothing called it since the last change, in Commit.
	PhaseWorkingRoots = "working_roots"
	// PhasePlan: buckets for the new pages, including any table growth.
	PhasePlan = "plan"
	// PhaseTableGrow: a growth of the page table (part of PhasePlan),
	// with the checkpoint before it.
	PhaseTableGrow = "table_grow"
	// PhaseBatch: building the commit batch (values, leaves, history,
	// change list).
	PhaseBatch = "batch"
	// PhaseCommitPoint: the WAL record synced in the log (appended while
	// the batch was built, so mostly waited for) and the synced Pebble
	// batch that commits the version.
	PhaseCommitPoint = "commit_point"
	// PhaseCheckpoint: in the background, the dirty pages and meta map
	// written, the table fsynced and the checkpoint recorded.
	PhaseCheckpoint = "checkpoint"
	// PhaseBulkBuild: a bulk load's build of one tree (bulk.go): its
	// leaves merged, its pages written, its tables ingested.
	PhaseBulkBuild = "bulk_build"
)

// CommitStats describe one commit.
type CommitStats struct {
	Version uint64
	// Duration is the Commit call, from any wait for a checkpoint to the
	// version being durable. It includes the trie update only if
	// WorkingRoots was not called first.
	Duration time.Duration
	// Keys is the number of keys the commit set or deleted, Pages the
	// pages it wrote or cleared, WALBytes what it appended to the log: its
	// page changes' records and its commit frame, which holds its batch.
	Keys, Pages, WALBytes int
	// NodeHashes is the leaf and internal hashes the trie update computed:
	// with one node hash's cost, the hashing-only lower bound of the commit.
	NodeHashes int
	// Dirty is the number of committed pages held in memory until the
	// next checkpoint writes them.
	Dirty int
	// Table is the page table after the commit: load factor and probe
	// lengths (the probe figures accumulate since the table was opened).
	Table bitbox.Stats
}

func (o *Options) observePhase(phase string, start time.Time) {
	if o.Observer != nil {
		o.Observer.CommitPhase(phase, time.Since(start))
	}
}

// now is time.Now when an observer is set: an unobserved commit reads no
// clock.
func (o *Options) now() time.Time {
	if o.Observer == nil {
		return time.Time{}
	}
	return time.Now()
}
