package cms

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// LoadVersion builds the mounted stores at version ver, applying upgrades
// (added, renamed and deleted stores) as writes of the next commit, with
// rootmulti's checks and its order (stores by name). Below the latest, the
// store reads that version and refuses writes (ErrPastVersion): that is
// what loading a height for an export needs; RollbackToVersion is what
// moves the latest. Upgrades apply only at the latest version.
func (s *Store) LoadVersion(ver int64, upgrades *Upgrades) error {
	s.mu.RLock()
	onLoad := s.onLoad
	s.mu.RUnlock()
	if onLoad != nil {
		onLoad()
	}
	latest := int64(s.engine.Version())
	if ver < 0 || ver > latest {
		return fmt.Errorf("nomtstore: cannot load version %d: the latest version is %d", ver, latest)
	}
	if ver < latest && upgrades != nil {
		return fmt.Errorf("nomtstore: store upgrades apply at the latest version (%d), not at %d", latest, ver)
	}
	cInfo := &CommitInfo{}
	if ver != 0 {
		var err error
		if cInfo, err = s.GetCommitInfo(ver); err != nil {
			return err
		}
	}
	infos := make(map[string]StoreInfo, len(cInfo.Stores))
	for _, si := range cInfo.Stores {
		infos[si.Name] = si
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// A reload drops the writes not committed, as rootmulti's does.
	s.engine.Discard()

	keys := make([]StoreKey, 0, len(s.mounts))
	var treeNames []string
	for key, m := range s.mounts {
		keys = append(keys, key)
		if m.kind == KindTree {
			treeNames = append(treeNames, key.Name())
			if old := upgrades.RenamedFrom(key.Name()); old != "" {
				treeNames = append(treeNames, old)
			}
		}
	}
	slices.SortFunc(keys, func(a, b StoreKey) int { return strings.Compare(a.Name(), b.Name()) })
	if err := s.engine.AddTrees(treeNames...); err != nil {
		return err
	}

	stores := map[StoreKey]any{}
	trees := map[StoreKey]*Tree{}
	removal := map[StoreKey]bool{}
	for _, key := range keys {
		m := s.mounts[key]
		info, inInfo := infos[key.Name()]
		added := upgrades.IsAdded(key.Name()) || upgrades.RenamedFrom(key.Name()) != ""
		if m.kind == KindTree && ver != 0 && !added && (!inInfo || info.CommitID.Version != ver) {
			return fmt.Errorf("version of store %s mismatch root store's version; expected %d got %d; new stores should be added using StoreUpgrades",
				key.Name(), ver, info.CommitID.Version)
		}
		if m.kind != KindTree {
			store, err := s.newSDKStore(m)
			if err != nil {
				return fmt.Errorf("failed to load store: %w", err)
			}
			stores[key] = store
			continue
		}
		t := newTree(s.engine, key.Name(), info.CommitID)
		trees[key] = t

		if upgrades.IsDeleted(key.Name()) {
			if err := deleteAll(t); err != nil {
				return fmt.Errorf("failed to delete store %s: %w", key.Name(), err)
			}
			removal[key] = true
		} else if oldName := upgrades.RenamedFrom(key.Name()); oldName != "" {
			old := newTree(s.engine, oldName, infos[oldName].CommitID)
			if err := moveAll(old, t); err != nil {
				return fmt.Errorf("failed to move store %s -> %s: %w", oldName, key.Name(), err)
			}
			// Mounted for this commit only, so the deletion commits and the
			// old name leaves the commit info.
			oldKey := removedKey(oldName)
			trees[oldKey] = old
			removal[oldKey] = true
		}
	}
	// The pruning manager reloads the snapshot heights it was holding
	// back, as rootmulti does at each load: the options it needs to read
	// them (SetPruning) are only set after New, so New cannot.
	if err := s.pruner.LoadSnapshotHeights(); err != nil {
		return err
	}
	if err := s.deleteUnmounted(upgrades, infos, trees, removal); err != nil {
		return err
	}
	live, leaving := map[StoreKey]*Tree{}, map[StoreKey]*Tree{}
	for key, t := range trees {
		if removal[key] {
			leaving[key] = t
		} else {
			live[key] = t
		}
	}
	maps.Copy(stores, s.line.ServeTrees(live, leaving))
	s.stores, s.trees, s.removalMap = stores, trees, removal
	s.lastCommitInfo = cInfo
	s.loaded = true
	s.pastVersion = 0
	if ver < latest {
		s.pastVersion = ver
		for _, t := range trees {
			t.readOnlyAt = uint64(ver)
		}
	}
	return nil
}

// removedKey is the key of a store an upgrade removes that the app does
// not mount (a renamed store's old name, a deleted module's store).
type removedKey string

func (k removedKey) Name() string   { return string(k) }
func (k removedKey) String() string { return "removedKey{" + string(k) + "}" }

// deleteAll deletes every key of a store (a deleted store's upgrade).
func deleteAll(t *Tree) error {
	var keys [][]byte
	it := t.Iterator(nil, nil)
	for ; it.Valid(); it.Next() {
		keys = append(keys, slices.Clone(it.Key()))
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, k := range keys {
		t.Delete(k)
	}
	return nil
}

// moveAll copies every key of from into to, then deletes from's keys (a
// renamed store's upgrade).
func moveAll(from, to *Tree) error {
	it := from.Iterator(nil, nil)
	for ; it.Valid(); it.Next() {
		to.Set(it.Key(), it.Value())
	}
	if err := it.Close(); err != nil {
		return err
	}
	return deleteAll(from)
}

// deleteUnmounted empties the deleted stores the app no longer mounts (the
// usual way to remove a module). rootmulti only drops them from the commit
// info and keeps their data forever; here the deletion commits with the
// upgrade, so pruning reclaims the space once the old heights go.
func (s *Store) deleteUnmounted(upgrades *Upgrades, infos map[string]StoreInfo, trees map[StoreKey]*Tree, removal map[StoreKey]bool) error {
	if upgrades == nil {
		return nil
	}
	for _, name := range upgrades.Deleted {
		if _, mounted := s.keysByName[name]; mounted {
			continue
		}
		if _, existed := infos[name]; !existed || !slices.Contains(s.engine.Trees(), name) {
			continue
		}
		key := removedKey(name)
		t := newTree(s.engine, name, infos[name].CommitID)
		if err := deleteAll(t); err != nil {
			return fmt.Errorf("failed to delete store %s: %w", name, err)
		}
		trees[key], removal[key] = t, true
	}
	return nil
}
