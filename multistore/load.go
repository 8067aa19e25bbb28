package multistore

import (
	"fmt"
	"slices"

	errorsmod "cosmossdk.io/errors"
	"cosmossdk.io/store/types"
)

// LoadLatestVersion loads the latest version.
func (s *Store) LoadLatestVersion() error {
	return s.loadVersion(int64(s.engine.Version()), nil)
}

// LoadLatestVersionAndUpgrade loads the latest version and applies the
// store upgrades (added, renamed, deleted) as writes of the next commit.
func (s *Store) LoadLatestVersionAndUpgrade(upgrades *types.StoreUpgrades) error {
	return s.loadVersion(int64(s.engine.Version()), upgrades)
}

// LoadVersion loads a version. Below the latest, the store reads that
// version and refuses writes (ErrPastVersion): that is what loading a
// height for an export needs; RollbackToVersion is what moves the latest.
func (s *Store) LoadVersion(ver int64) error {
	return s.loadVersion(ver, nil)
}

// LoadVersionAndUpgrade is LoadVersion with upgrades, which apply only at
// the latest version.
func (s *Store) LoadVersionAndUpgrade(ver int64, upgrades *types.StoreUpgrades) error {
	return s.loadVersion(ver, upgrades)
}

// loadVersion builds the mounted stores at version ver, applying upgrades
// (added, renamed and deleted stores) as writes of the next commit, with
// rootmulti's checks and its order (stores by name).
func (s *Store) loadVersion(ver int64, upgrades *types.StoreUpgrades) error {
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
	cInfo := &types.CommitInfo{}
	if ver != 0 {
		var err error
		if cInfo, err = s.GetCommitInfo(ver); err != nil {
			return err
		}
	}
	infos := make(map[string]types.StoreInfo, len(cInfo.StoreInfos))
	for _, si := range cInfo.StoreInfos {
		infos[si.Name] = si
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// A reload drops the writes not committed, as rootmulti's does.
	s.engine.Discard()

	keys := make([]types.StoreKey, 0, len(s.storesParams))
	var treeNames []string
	for key, p := range s.storesParams {
		keys = append(keys, key)
		if p.typ == types.StoreTypeIAVL {
			treeNames = append(treeNames, key.Name())
			if old := upgrades.RenamedFrom(key.Name()); old != "" {
				treeNames = append(treeNames, old)
			}
		}
	}
	slices.SortFunc(keys, func(a, b types.StoreKey) int { return compareStrings(a.Name(), b.Name()) })
	if err := s.engine.AddTrees(treeNames...); err != nil {
		return err
	}

	stores := map[types.StoreKey]types.CommitKVStore{}
	trees := map[types.StoreKey]*treeStore{}
	removal := map[types.StoreKey]bool{}
	for _, key := range keys {
		p := s.storesParams[key]
		info, inInfo := infos[key.Name()]
		added := upgrades.IsAdded(key.Name()) || upgrades.RenamedFrom(key.Name()) != ""
		if p.typ == types.StoreTypeIAVL && ver != 0 && !added && (!inInfo || info.CommitId.Version != ver) {
			return fmt.Errorf("version of store %s mismatch root store's version; expected %d got %d; new stores should be added using StoreUpgrades",
				key.Name(), ver, info.CommitId.Version)
		}
		if p.typ != types.StoreTypeIAVL {
			store, err := s.newSDKStore(p)
			if err != nil {
				return errorsmod.Wrap(err, "failed to load store")
			}
			stores[key] = store
			continue
		}
		last := types.CommitID{}
		if inInfo {
			last = info.CommitId
		}
		t := newTreeStore(s.engine, key.Name(), s.metrics, last)
		trees[key] = t
		stores[key] = t // wrapped in the inter-block cache below

		if upgrades.IsDeleted(key.Name()) {
			if err := deleteAll(t); err != nil {
				return errorsmod.Wrapf(err, "failed to delete store %s", key.Name())
			}
			removal[key] = true
		} else if oldName := upgrades.RenamedFrom(key.Name()); oldName != "" {
			oldKey := types.NewKVStoreKey(oldName)
			old := newTreeStore(s.engine, oldName, s.metrics, infos[oldName].CommitId)
			if err := moveAll(old, t); err != nil {
				return errorsmod.Wrapf(err, "failed to move store %s -> %s", oldName, key.Name())
			}
			// Mounted for this commit only, so the deletion commits and the
			// old name leaves the commit info.
			trees[oldKey] = old
			stores[oldKey] = old
			removal[oldKey] = true
		}
	}
	// The pruning manager reloads the snapshot heights it was holding
	// back, as rootmulti does at each load: the options it needs to read
	// them (SetPruning) are only set after New, so New cannot.
	if err := s.pruner.LoadSnapshotHeights(); err != nil {
		return err
	}
	if s.interBlockCache != nil {
		// The cache manager keeps the store it first wrapped for a name;
		// after a reload (snapshot restore, rollback) that is the previous
		// treeStore, whose pending writes and last commit ID are never
		// updated again. Start the caches afresh over the new stores.
		s.interBlockCache.Reset()
		for key, t := range trees {
			if !removal[key] {
				stores[key] = s.interBlockCache.GetStoreCache(key, t)
			}
		}
	}
	if err := s.deleteUnmounted(upgrades, infos, stores, trees, removal); err != nil {
		return err
	}
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

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// deleteAll deletes every key of a store (a deleted store's upgrade).
func deleteAll(t *treeStore) error {
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
func moveAll(from, to *treeStore) error {
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
func (s *Store) deleteUnmounted(upgrades *types.StoreUpgrades, infos map[string]types.StoreInfo,
	stores map[types.StoreKey]types.CommitKVStore, trees map[types.StoreKey]*treeStore, removal map[types.StoreKey]bool,
) error {
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
		key := types.NewKVStoreKey(name)
		t := newTreeStore(s.engine, name, s.metrics, infos[name].CommitId)
		if err := deleteAll(t); err != nil {
			return errorsmod.Wrapf(err, "failed to delete store %s", name)
		}
		trees[key], stores[key], removal[key] = t, t, true
	}
	return nil
}
