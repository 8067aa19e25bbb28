package cms

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	protoio "github.com/cosmos/gogoproto/io"
)

// SnapshotWriter writes the items of a state-sync snapshot in the SDK's
// format (format 3) with the line's generated types.
type SnapshotWriter interface {
	// WriteStore writes a SnapshotStoreItem: the next leaves are name's.
	WriteStore(name string) error
	// WriteLeaf writes a SnapshotIAVLItem leaf (height 0).
	WriteLeaf(key, value []byte, version int64) error
}

// Snapshot writes the trees at height: per tree, by name, a store item
// then its key/value pairs in key order as IAVL leaves (height 0). IAVL
// also writes its inner nodes; a trie has no use for them, and the restore
// needs only the leaves to rebuild. (IAVL's importer does need them:
// rootmulti cannot restore this stream, nor could it use the state, whose
// app hash is not IAVL's.)
func (s *Store) Snapshot(height uint64, w SnapshotWriter) error {
	if height == 0 {
		return sdkError(ErrLogic, "cannot snapshot height 0")
	}
	if latest := s.engine.Version(); height > latest {
		return sdkError(ErrLogic, "cannot snapshot future height %v", height)
	}
	// A snapshot of the switch from IAVL would restore to nomtstore's
	// roots, never to the IAVL app hash the chain recorded there.
	if migrated, err := s.isMigratedHeight(int64(height)); err != nil {
		return err
	} else if migrated {
		return sdkError(ErrLogic, "cannot snapshot height %d: it is where the chain moved from IAVL, and its app hash is IAVL's; snapshot a later height", height)
	}
	names, err := s.snapshotStores()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := s.snapshotTree(name, height, w); err != nil {
			s.logger.Error("snapshot failed", "store", name, "height", height, "err", err)
			return err
		}
	}
	return nil
}

// snapshotStores names the stores a snapshot holds, sorted; it refuses a
// DB-type store, which cannot be read at a height (as rootmulti refuses).
func (s *Store) snapshotStores() ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var names []string
	for key, store := range s.stores {
		switch {
		case s.trees[key] != nil:
			if !s.removalMap[key] {
				names = append(names, key.Name())
			}
		case s.mounts[key].kind == KindTransient || s.mounts[key].kind == KindMemory || s.mounts[key].kind == KindObject:
		default:
			return nil, sdkError(ErrLogic, "don't know how to snapshot store %q of type %T", key.Name(), store)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (s *Store) snapshotTree(name string, height uint64, w SnapshotWriter) error {
	it, err := s.engine.NewIteratorAt(name, nil, nil, false, height)
	if err != nil {
		return err
	}
	defer func() { _ = it.Close() }()
	if err := w.WriteStore(name); err != nil {
		return err
	}
	n := 0
	for ; it.Valid(); it.Next() {
		if err := w.WriteLeaf(it.Key(), it.Value(), int64(height)); err != nil {
			return err
		}
		n++
	}
	s.logger.Debug("snapshot store done", "store", name, "height", height, "keys", n)
	return it.Error()
}

// Restore rebuilds the trees at height from a snapshot stream (ours, or
// IAVL's: its inner nodes are skipped) into an empty store, as one bulk
// load of the engine (commitment.DB.BeginBulk): values stream into sorted
// tables, leaves sort in runs of bounded size, and each tree's pages are
// built bottom-up and written once, so memory stays bounded by
// configuration whatever the state size. It commits the stores as version
// height in one sync and loads it. The first item that is not a store or
// a leaf (an extension's) ends the stores: it goes to other, which
// decodes it with the line's type for the adapter to return, as rootmulti
// does (an error there is the restore's). On an error (a truncated or
// hostile stream, a crash) nothing is committed and the store is left
// empty, ready for a retry.
func (s *Store) Restore(height uint64, r protoio.Reader, other func(item []byte) error) (err error) {
	if height == 0 {
		return sdkError(ErrLogic, "cannot restore snapshot at height 0")
	}
	if height > math.MaxInt64 {
		return sdkError(ErrLogic, "cannot restore snapshot at height %d", height)
	}
	if v := s.engine.Version(); v != 0 {
		return sdkError(ErrLogic, "cannot restore a snapshot into a store at version %d; it must be empty", v)
	}
	if err := s.SetInitialVersion(int64(height)); err != nil {
		return err
	}
	if err := s.engine.BeginBulk(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.engine.Discard()
		}
	}()
	trees := s.treeNames()
	var current string
	restored := map[string]int{}
	iavlNodes := 0
	var it restoreItem
loop:
	for {
		err := r.ReadMsg(&it)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("invalid protobuf message: %w", err)
		}
		switch it.kind {
		case itemStore:
			name := string(it.storeName)
			if !trees[name] {
				return sdkError(ErrLogic, "cannot import into non-IAVL store %q", name)
			}
			if _, dup := restored[name]; dup {
				return sdkError(ErrLogic, "store %q appears twice in the snapshot", name)
			}
			current = name
			restored[name] = 0
		case itemIAVL:
			if current == "" {
				return sdkError(ErrLogic, "received IAVL node item before store item")
			}
			if it.height > math.MaxInt8 || it.height < 0 {
				return sdkError(ErrLogic, "node height %v out of range 0..%v", it.height, math.MaxInt8)
			}
			if it.height > 0 {
				iavlNodes++
				continue // an IAVL inner node
			}
			value := it.value
			if value == nil {
				value = []byte{}
			}
			// The engine refuses a key out of order, as it takes each
			// store's keys in one sorted run; it copies key and value,
			// which are the reader's buffer.
			if err := s.engine.Set(current, it.key, value); err != nil {
				return sdkError(ErrLogic, "store %q: %v", current, err)
			}
			restored[current]++
		default:
			// An extension's item, or none of the oneof.
			if err := other(it.raw); err != nil {
				return fmt.Errorf("invalid protobuf message: %w", err)
			}
			break loop
		}
	}
	if err := s.commitRestored(int64(height)); err != nil {
		return err
	}
	s.logger.Info("nomtstore restored a snapshot", "height", height, "stores", len(restored))
	if iavlNodes > 0 {
		// Its keys are right, but the app hash the chain recorded for the
		// height is IAVL's (a height before a switch to nomtstore), which
		// this store does not make: CometBFT's check after the restore
		// fails ("appHash verification failed").
		s.logger.Error("the restored snapshot was taken by a node on IAVL (it carries IAVL's inner nodes): its app hash is nomtstore's, never the IAVL app hash the chain recorded at that height, so state sync will refuse it; state-sync from a node on nomtstore, at a height after the chain's switch",
			"height", height, "iavl_inner_nodes", iavlNodes)
	}
	return s.LoadVersion(int64(s.engine.Version()), nil)
}

func (s *Store) treeNames() map[string]bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := map[string]bool{}
	for key := range s.trees {
		names[key.Name()] = true
	}
	return names
}

// commitRestored commits the bulk load as version height. The app hash it
// makes is the one the snapshot was taken for, which state sync checks
// against the chain's: a tree built wrong cannot go unnoticed.
func (s *Store) commitRestored(height int64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nomtstore: committing the restored snapshot: %v", r)
		}
	}()
	if info := s.Commit(); info.Version != height {
		return fmt.Errorf("nomtstore: the restored snapshot committed as version %d, not %d", info.Version, height)
	}
	return nil
}
