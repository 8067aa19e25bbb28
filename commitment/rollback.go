package commitment

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/nomtstore/nomtstore/commitment/bitbox"
	"github.com/nomtstore/nomtstore/commitment/trie"
)

// Rollback makes target the latest version: every later version is undone,
// newest first, each as one commit of the protocol in commit.go (its WAL
// restores the pages the version rewrote or cleared and clears those it
// created; its Pebble batch restores the values it superseded and deletes
// its history), so a crash leaves the store at some version between target
// and where it started, and calling Rollback again finishes the job.
// Committing the same changes again reproduces the same roots.
//
// Staged changes are discarded. A target that is pruned is ErrVersionPruned;
// one that is not committed, ErrVersionFuture.
func (db *DB) Rollback(target uint64) error {
	db.pruneMu.Lock()
	defer db.pruneMu.Unlock()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.staged.clearChanges()
	db.mu.RLock()
	latest := db.committed.record.version
	err := db.committed.checkVersion(target)
	db.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("commitment: cannot roll back: %w", err)
	}
	for v := latest; v > target; v-- {
		if err := db.undoVersion(v); err != nil {
			return fmt.Errorf("commitment: rolling back version %d: %w", v, err)
		}
	}
	if latest > target {
		db.opts.Logger.Info("nomtstore rolled back", "from", latest, "to", target)
	}
	return nil
}

// undoVersion undoes version v, the latest. REQUIRES: writeMu, pruneMu.
func (db *DB) undoVersion(v uint64) error {
	if err := db.protocol.sticky(); err != nil {
		return err
	}
	db.mu.RLock()
	record := db.committed.record
	table := db.committed.pages.table
	prevRoots, err := db.committed.rootsAt(v - 1)
	db.mu.RUnlock()
	if err != nil {
		return err
	}
	if record.version != v {
		return fmt.Errorf("%w: version %d is not the latest (%d)", ErrCorrupt, v, record.version)
	}
	changed := &changeList{}
	if raw, found, err := getMeta(db.pebble, versionKey(prefixChanges, v), "a change list"); err != nil {
		return err
	} else if found {
		if changed, err = decodeChangeList(raw); err != nil {
			return err
		}
	}
	db.opts.hookAt("undo")

	changes := make([]bitbox.Change, 0, len(changed.pages))
	for _, p := range changed.pages {
		c, err := db.undoPage(table, p, v)
		if err != nil {
			return err
		}
		changes = append(changes, c)
	}
	if err := db.committed.pages.place(changes, table); err != nil {
		return err
	}

	batch := db.protocol.newChunkedBatch(0)
	var errs []error
	set := func(key, value []byte) { errs = append(errs, batch.Set(key, value, nil)) }
	del := func(key []byte) { errs = append(errs, batch.Delete(key, nil)) }
	for _, k := range changed.keys {
		path := trie.PathOf(k.key)
		if !k.hadPrior {
			del(valueKey(k.store, k.key))
			del(leafKey(k.store, path))
			continue
		}
		entry, found, err := getMeta(db.pebble, oldEntryKey(k.store, path, v), "a superseded entry")
		if err != nil {
			_ = batch.Close()
			return err
		}
		born, rest, err := splitBorn(entry)
		var key, value []byte
		if err == nil {
			key, value, err = splitSuperseded(rest)
		}
		if !found || err != nil || !bytes.Equal(key, k.key) {
			_ = batch.Close()
			return errors.Join(err, fmt.Errorf("%w: the value of %x superseded at version %d is missing", ErrCorrupt, k.key, v))
		}
		set(valueKey(k.store, k.key), bornValue(born, value))
		set(leafKey(k.store, path), leafValue(born, trie.LeafHash(path, trie.ValueHash(value)), k.key))
	}
	errs = append(errs, dropVersionHistory(db.pebble, batch, v))
	del(versionKey(prefixRoots, v))
	del(versionKey(prefixAppVersion, v))
	if err := errors.Join(errs...); err != nil {
		_ = batch.Close()
		return err
	}
	purge := func() {
		db.committed.values.purge()
		db.committed.leaves.purge()
	}
	undone := &commitRecord{version: v - 1, lastSeq: record.lastSeq, roots: prevRoots}
	if _, err = db.protocol.commitDurably(undone, db.protocol.planWAL(undone, changes), changes, batch, nil, purge); err != nil {
		return err
	}
	// v's superseded pages, which nothing reads now; a crash first leaves
	// them to the next open (dropStrayHistory).
	if err := db.history.deleteRange(versionKey(prefixOldPage, v), versionKey(prefixOldPage, v+1)); err != nil {
		return fmt.Errorf("commitment: deleting the page history of version %d: %w", v, err)
	}
	return db.committed.pages.afterCommit()
}

// undoPage is the table change that puts a page back as it was before
// version v: its superseded copy, or nothing if v created it.
func (db *DB) undoPage(table *bitbox.Table, p changedPage, v uint64) (bitbox.Change, error) {
	key := bitbox.PageKey{Store: p.store, ID: p.id}
	c := bitbox.Change{Key: key}
	db.mu.RLock()
	cp, found, err := db.committed.pages.lookup(key)
	db.mu.RUnlock()
	current, bucket := cp.page, cp.bucket
	if err != nil {
		return c, err
	}
	if found {
		c.Prior, c.Bucket = current, bucket
	}
	entry := []byte{pageCreated}
	if p.hadPrior {
		var ok bool
		if entry, ok, err = getMeta(db.history.DB, oldPageKey(v, p.store, p.id), "a superseded page"); err != nil {
			return c, err
		} else if !ok {
			return c, fmt.Errorf("%w: %s as before version %d is missing", ErrCorrupt, key, v)
		}
	}
	if c.Page, err = pageBefore(entry, func() (*trie.Page, error) { return c.Prior, nil }); err != nil {
		return c, fmt.Errorf("%w: %s as before version %d: %w", ErrCorrupt, key, v, err)
	}
	if (c.Page != nil) != p.hadPrior {
		return c, fmt.Errorf("%w: %s as before version %d: the change list and the page history disagree on whether it existed", ErrCorrupt, key, v)
	}
	if c.Page == nil && c.Prior == nil {
		return c, fmt.Errorf("%w: %s, created at version %d, is not in the page table", ErrCorrupt, key, v)
	}
	return c, nil
}
