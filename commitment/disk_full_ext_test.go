package commitment_test

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

// TestDiskFullFailsTheCommit: a full disk is a commit that fails before
// its commit point and changes nothing, never a committed version whose
// pages cannot be written afterwards (ErrFlushFailed, a dead store until
// restarted). The page table's space is allocated when it is created or
// grown, so writing pages into it never needs more; growing it does, and
// fails cleanly.
func TestDiskFullFailsTheCommit(t *testing.T) {
	const buckets = 64
	t.Run("writing pages", func(t *testing.T) {
		fs := vfs.NewCrashFS(1)
		// A small reserve for Pebble's own writes (its memtables never
		// flush in this test), so that commits go on until the disk is
		// nearly full; every page stored, so that they fill it.
		opts := commitment.Options{FS: fs, InitialBuckets: buckets, PebbleCacheBytes: 1 << 20, DiskReserveBytes: 64 << 10, ElideBelow: 1}
		db, err := commitment.Open("/store", modelTrees, opts)
		if err != nil {
			t.Fatal(err)
		}
		// Room for half the table's pages, and Pebble's few writes.
		fs.SetCapacity(fs.Used() + bitbox.FileSize(buckets)/2)
		committed := map[string]string{}
		for i := 0; ; i++ {
			if i == 200 {
				t.Fatal("200 commits and the disk is not full")
			}
			batch := map[string]string{}
			for k := range 20 {
				key := fmt.Sprintf("key%04d.%02d", i, k)
				batch[key] = "value of " + key
				if err := db.Set("bank", []byte(key), []byte(batch[key])); err != nil {
					t.Fatal(err)
				}
			}
			before := db.Version()
			_, err := db.Commit()
			if err == nil {
				if err := db.WaitFlushed(); err != nil {
					t.Fatalf("version %d committed, then its pages could not be written: %v", db.Version(), err)
				}
				for k, v := range batch {
					committed[k] = v
				}
				continue
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("commit on a full disk: %v, want ENOSPC", err)
			}
			if db.Version() != before {
				t.Fatalf("a failed commit moved the version from %d to %d", before, db.Version())
			}
			if err := db.WaitFlushed(); err != nil {
				t.Fatalf("after a commit that failed for want of space: %v", err)
			}
			t.Logf("commit %d failed cleanly: %v", before+1, err)
			break
		}
		// Nothing changed: every committed key reads, the failed batch's
		// do not, and the store reopens at the same version once there is
		// room.
		version := db.Version()
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		fs.SetCapacity(0)
		db, err = commitment.Open("/store", modelTrees, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = db.Close() }()
		if db.Version() != version {
			t.Fatalf("reopened at version %d, want %d", db.Version(), version)
		}
		for k, v := range committed {
			if got, err := db.Get("bank", []byte(k)); err != nil || string(got) != v {
				t.Fatalf("%s: %q, %v; want %q", k, got, err, v)
			}
		}
		if violations, err := db.Check(); err != nil || len(violations) > 0 {
			t.Fatalf("check: %v %v", err, violations)
		}
	})
	t.Run("creating the table", func(t *testing.T) {
		fs := vfs.NewCrashFS(1)
		fs.SetCapacity(bitbox.FileSize(buckets) / 2)
		db, err := commitment.Open("/store", modelTrees, commitment.Options{FS: fs, InitialBuckets: buckets, PebbleCacheBytes: 1 << 20})
		if err == nil {
			_ = db.Close()
			t.Fatal("a store opened on a disk too small for its page table")
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("open on a full disk: %v, want ENOSPC", err)
		}
	})
}
