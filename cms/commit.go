package cms

import (
	"errors"
	"fmt"

	"github.com/nomtstore/nomtstore/commitment"
)

// LastCommitInfo is the commit info of the last commit; before the first,
// an empty one at the engine's version.
func (s *Store) LastCommitInfo() CommitInfo {
	s.mu.RLock()
	info := s.lastCommitInfo
	s.mu.RUnlock()
	if info == nil {
		return CommitInfo{Version: int64(s.engine.Version())}
	}
	return *info
}

// WorkingInfo is the commit info the staged writes will commit, without
// versions or time (what the working hash is of): every tree's new root,
// computed in memory (nothing is written). Like rootmulti's working hash,
// it covers the trees only.
func (s *Store) WorkingInfo() CommitInfo {
	s.refuseIfPast()
	roots, err := s.engine.WorkingRoots()
	if err != nil {
		panic(fmt.Errorf("nomtstore: computing the working hash: %w", err))
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	infos := make([]StoreInfo, 0, len(s.trees))
	for key, t := range s.trees {
		if s.removalMap[key] {
			continue
		}
		root := roots[t.name]
		infos = append(infos, StoreInfo{Name: key.Name(), CommitID: CommitID{Hash: root[:]}})
	}
	sortInfos(infos)
	return CommitInfo{Stores: infos}
}

func (s *Store) refuseIfPast() {
	s.mu.RLock()
	past, loaded := s.pastVersion, s.loaded
	s.mu.RUnlock()
	if !loaded {
		panic(ErrNotLoaded)
	}
	if past != 0 {
		panic(fmt.Errorf("%w: at version %d, the latest is %d", ErrPastVersion, past, s.engine.Version()))
	}
}

// Commit makes every store's writes durable as the next version in one
// engine sync, with the version's commit info (rootmulti's format) in the
// same atomic batch, then asks the pruning worker for what the pruning
// options allow. It panics on a failed commit, as rootmulti does: the
// version does not exist and the node must stop.
func (s *Store) Commit() CommitInfo {
	s.refuseIfPast()
	roots, err := s.engine.WorkingRoots()
	if err != nil {
		panic(fmt.Errorf("nomtstore: commit: %w", err))
	}

	s.mu.Lock()
	var prev int64
	if s.lastCommitInfo != nil {
		prev = s.lastCommitInfo.Version
	}
	// Checked before anything commits (the engine, or a transient store
	// emptied): after the engine's commit the version is durable, with a
	// commit info naming the wrong height.
	if latest := s.engine.Version(); uint64(prev) != latest {
		s.mu.Unlock()
		panic(fmt.Errorf("nomtstore: commit: the store is loaded at version %d but its latest version is %d (a LoadVersion below the latest?); nothing was committed", prev, latest))
	}
	version := prev + 1
	if prev == 0 && s.initialVersion > 1 {
		version = s.initialVersion
	}
	info := &CommitInfo{Version: version, Timestamp: s.commitTime}
	for key, store := range s.stores {
		if s.removalMap[key] {
			continue
		}
		if s.trees[key] != nil {
			root := roots[key.Name()]
			info.Stores = append(info.Stores, StoreInfo{
				Name: key.Name(), CommitID: CommitID{Version: version, Hash: root[:]},
			})
			continue
		}
		// Committed as rootmulti does: a transient store's Commit empties
		// it for the next block (a memory store's does nothing); a DB
		// store's ID goes into the commit info.
		if id, inInfo := s.line.CommitSDKStore(store); inInfo {
			info.Stores = append(info.Stores, StoreInfo{Name: key.Name(), CommitID: id})
		}
	}
	sortInfos(info.Stores)
	record, err := s.line.EncodeCommitInfo(*info)
	if err != nil {
		s.mu.Unlock()
		panic(fmt.Errorf("nomtstore: encoding the commit info: %w", err))
	}
	s.engine.SetVersionRecord(record)
	s.mu.Unlock()

	// The engine's commit (its WAL and Pebble syncs) runs without s.mu:
	// queries and reads take s.mu to find their store, and the engine
	// answers them alongside a commit. Only the ABCI goroutine commits or
	// mounts, so nothing changes s.stores meanwhile.
	res, err := s.engine.Commit()
	if err != nil {
		panic(fmt.Errorf("nomtstore: commit of version %d: %w", version, err))
	}
	if int64(res.Version) != version {
		panic(fmt.Errorf("nomtstore: committed version %d, expected %d", res.Version, version))
	}

	s.mu.Lock()
	for key, t := range s.trees {
		root := roots[key.Name()]
		t.committed(CommitID{Version: version, Hash: root[:]})
	}
	for key := range s.removalMap {
		delete(s.stores, key)
		delete(s.trees, key)
		delete(s.mounts, key)
		if s.keysByName[key.Name()] == key {
			delete(s.keysByName, key.Name())
		}
	}
	s.removalMap = map[StoreKey]bool{}
	s.lastCommitInfo = info
	s.mu.Unlock()

	if to := s.pruner.PruneHeight(version); to > 0 {
		s.worker.Request(uint64(to))
	}
	if s.observer != nil {
		s.observer.Versions(res.Version, s.engine.EarliestVersion(), s.worker.Stats())
	}
	return *info
}

// GetCommitInfo returns the commit info of a retained version, as
// rootmulti stores it.
func (s *Store) GetCommitInfo(ver int64) (*CommitInfo, error) {
	if ver <= 0 {
		return nil, errors.New("no commit info found")
	}
	raw, err := s.engine.VersionRecord(uint64(ver))
	if err != nil {
		return nil, fmt.Errorf("no commit info found: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: version %d has no commit info", commitment.ErrCorrupt, ver)
	}
	info, err := s.line.DecodeCommitInfo(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: the commit info of version %d: %w", commitment.ErrCorrupt, ver, err)
	}
	return &info, nil
}

// SetInitialVersion makes the first commit's version v (InitChain with an
// initial height). It fails once a version exists.
func (s *Store) SetInitialVersion(version int64) error {
	if version <= 0 {
		return fmt.Errorf("nomtstore: invalid initial version %d", version)
	}
	if err := s.engine.SetInitialVersion(uint64(version)); err != nil {
		return err
	}
	s.mu.Lock()
	s.initialVersion = version
	s.mu.Unlock()
	return nil
}

// RollbackToVersion makes target the latest version (the node's rollback
// command): every later version is undone in the engine, durably, and the
// stores are reloaded at target. A pruned target is refused.
func (s *Store) RollbackToVersion(target int64) error {
	if target <= 0 {
		return fmt.Errorf("invalid rollback height target: %d", target)
	}
	// A pruning run stops between two versions rather than finish its
	// backlog first (every version of an archive node turning pruning on),
	// and none starts until the rollback is done.
	resume := s.worker.Pause()
	defer resume()
	// A target pruning was asked to delete is refused as if it were gone,
	// as it was when the rollback waited for pruning to finish.
	if requested := s.worker.Stats().Requested; uint64(target) <= requested {
		return fmt.Errorf("commitment: cannot roll back: %w: version %d (pruning was asked to delete every version up to %d)",
			commitment.ErrVersionPruned, target, requested)
	}
	if err := s.engine.Rollback(uint64(target)); err != nil {
		return err
	}
	return s.LoadVersion(int64(s.engine.Version()), nil)
}

// LatestVersion is the engine's latest version.
func (s *Store) LatestVersion() int64 { return int64(s.engine.Version()) }
