package multistore

import (
	"fmt"

	errorsmod "cosmossdk.io/errors"
	"cosmossdk.io/store/dbadapter"
	"cosmossdk.io/store/mem"
	pruningtypes "cosmossdk.io/store/pruning/types"
	"cosmossdk.io/store/transient"
	"cosmossdk.io/store/types"
	cmtprotocrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	dbm "github.com/cosmos/cosmos-db"

	"github.com/nomtstore/nomtstore/cms"
	"github.com/nomtstore/nomtstore/keeper"
	"github.com/nomtstore/nomtstore/pruning"
)

// line is what the SDK-free core (package cms) needs of SDK v0.53: its
// own stores and its encoding of a commit info.
type line struct{ owner *Store }

var _ cms.Line = line{}

func (l line) NewSDKStore(key cms.StoreKey, kind cms.Kind, db dbm.DB) (any, error) {
	switch kind {
	case cms.KindDB:
		return commitDBStore{Store: dbadapter.Store{DB: db}}, nil
	case cms.KindTransient:
		if _, ok := key.(*types.TransientStoreKey); !ok {
			return nil, fmt.Errorf("invalid StoreKey for StoreTypeTransient: %s", key.String())
		}
		return transient.NewStore(), nil
	case cms.KindMemory:
		if _, ok := key.(*types.MemoryStoreKey); !ok {
			return nil, fmt.Errorf("unexpected key type for a MemoryStoreKey; got: %s", key.String())
		}
		return mem.NewStore(), nil
	}
	return nil, fmt.Errorf("nomtstore: store %s: unsupported store kind %d", key.Name(), kind)
}

func (l line) CommitSDKStore(store any) (cms.CommitID, bool) {
	s := store.(types.CommitKVStore)
	switch s.GetStoreType() {
	case types.StoreTypeTransient, types.StoreTypeMemory:
		s.Commit()
		return cms.CommitID{}, false
	}
	return commitIDFromSDK(s.Commit()), true
}

func (l line) ServeTrees(live, leaving map[cms.StoreKey]*cms.Tree) map[cms.StoreKey]any {
	// The cache manager's map is guarded by the adapter's mu (the lock
	// order, core then adapter, allows taking it here).
	l.owner.mu.Lock()
	defer l.owner.mu.Unlock()
	cache := l.owner.interBlockCache
	if cache != nil {
		// The cache manager keeps the store it first wrapped for a name;
		// after a reload (snapshot restore, rollback) that is the previous
		// tree, whose pending writes and last commit ID are never updated
		// again. Start the caches afresh over the new stores.
		cache.Reset()
	}
	served := make(map[cms.StoreKey]any, len(live)+len(leaving))
	for key, t := range live {
		var store types.CommitKVStore = &treeStore{tree: t, owner: l.owner}
		if sdkKey, ok := key.(types.StoreKey); ok && cache != nil {
			store = cache.GetStoreCache(sdkKey, store)
		}
		served[key] = store
	}
	for key, t := range leaving {
		served[key] = &treeStore{tree: t, owner: l.owner}
	}
	return served
}

func (l line) EncodeCommitInfo(info cms.CommitInfo) ([]byte, error) {
	return infoToSDK(info).Marshal()
}

func (l line) DecodeCommitInfo(b []byte) (cms.CommitInfo, error) {
	info, _, err := DecodeCommitInfo(b)
	return info, err
}

// DecodeCommitInfo decodes a commit info as rootmulti stores it, and its
// hash (the app hash): for the tools that read one from disk (migrate,
// the store commands).
func DecodeCommitInfo(b []byte) (cms.CommitInfo, []byte, error) {
	var info types.CommitInfo
	if err := info.Unmarshal(b); err != nil {
		return cms.CommitInfo{}, nil, err
	}
	return infoFromSDK(&info), info.Hash(), nil
}

func commitIDToSDK(id cms.CommitID) types.CommitID {
	return types.CommitID{Version: id.Version, Hash: id.Hash}
}

func commitIDFromSDK(id types.CommitID) cms.CommitID {
	return cms.CommitID{Version: id.Version, Hash: id.Hash}
}

func infoToSDK(info cms.CommitInfo) *types.CommitInfo {
	out := &types.CommitInfo{Version: info.Version, Timestamp: info.Timestamp}
	if len(info.Stores) > 0 {
		out.StoreInfos = make([]types.StoreInfo, len(info.Stores))
		for i, si := range info.Stores {
			out.StoreInfos[i] = types.StoreInfo{Name: si.Name, CommitId: commitIDToSDK(si.CommitID)}
		}
	}
	return out
}

func infoFromSDK(info *types.CommitInfo) cms.CommitInfo {
	out := cms.CommitInfo{Version: info.Version, Timestamp: info.Timestamp}
	for _, si := range info.StoreInfos {
		out.Stores = append(out.Stores, cms.StoreInfo{Name: si.Name, CommitID: commitIDFromSDK(si.CommitId)})
	}
	return out
}

func upgradesFromSDK(u *types.StoreUpgrades) *cms.Upgrades {
	if u == nil {
		return nil
	}
	out := &cms.Upgrades{Added: u.Added, Deleted: u.Deleted}
	for _, r := range u.Renamed {
		out.Renamed = append(out.Renamed, cms.Rename{Old: r.OldKey, New: r.NewKey})
	}
	return out
}

// PruningFromSDK is the SDK's pruning options as the pruning manager takes them.
func PruningFromSDK(o pruningtypes.PruningOptions) pruning.Options {
	return pruning.Options{
		Nothing:    o.GetPruningStrategy() == pruningtypes.PruningNothing,
		KeepRecent: o.KeepRecent,
		Interval:   o.Interval,
	}
}

func requestFromSDK(req *types.RequestQuery) cms.Request {
	return cms.Request{Path: req.Path, Data: req.Data, Height: req.Height, Prove: req.Prove}
}

// responseToSDK is the SDK's answer, with rootmulti's proof ops when the
// core proved the key.
func responseToSDK(res *cms.Response) *types.ResponseQuery {
	if res == nil {
		return &types.ResponseQuery{}
	}
	out := &types.ResponseQuery{Key: res.Key, Value: res.Value, Height: res.Height, Log: res.Log}
	if res.Proof != nil {
		op := types.NewSmtCommitmentOp(res.Key, res.Proof).ProofOp()
		if res.IAVLProof {
			op = types.NewIavlCommitmentOp(res.Key, res.Proof).ProofOp()
		}
		ops := []cmtprotocrypto.ProofOp{op}
		if res.ProvedIn != nil {
			ops = append(ops, infoToSDK(*res.ProvedIn).ProofOp(res.ProvedStore))
		}
		out.ProofOps = &cmtprotocrypto.ProofOps{Ops: ops}
	}
	return out
}

// errorToSDK gives the core's errors the SDK's registered error of their
// kind, so that ABCI answers carry the SDK's codespace and code.
func errorToSDK(err error) error {
	e, ok := cms.AsError(err)
	if !ok {
		return err
	}
	switch e.Kind {
	case cms.ErrUnknownRequest:
		return errorsmod.Wrap(types.ErrUnknownRequest, e.Msg)
	case cms.ErrInvalidRequest:
		return errorsmod.Wrap(types.ErrInvalidRequest, e.Msg)
	case cms.ErrTxDecode:
		return errorsmod.Wrap(types.ErrTxDecode, e.Msg)
	case cms.ErrLogic:
		return errorsmod.Wrap(types.ErrLogic, e.Msg)
	}
	return err
}

// dbStoreHash is the hash rootmulti reports for DB-type stores, which have
// no commitment.
var dbStoreHash = []byte("FAKE_HASH")

// commitDBStore is a DB-type store, committed as rootmulti commits them:
// writes go straight to the database, and the commit ID is a constant.
type commitDBStore struct{ dbadapter.Store }

func (commitDBStore) Commit() types.CommitID { return types.CommitID{Version: -1, Hash: dbStoreHash} }
func (commitDBStore) LastCommitID() types.CommitID {
	return types.CommitID{Version: -1, Hash: dbStoreHash}
}
func (commitDBStore) WorkingHash() []byte                    { return dbStoreHash }
func (commitDBStore) SetPruning(pruningtypes.PruningOptions) {}
func (commitDBStore) GetPruning() pruningtypes.PruningOptions {
	return pruningtypes.NewPruningOptions(pruningtypes.PruningUndefined)
}

// PruningSettings are the SDK pruning options in force, for the module's
// query service (keeper.Store).
func (s *Store) PruningSettings() keeper.Pruning {
	opts := s.GetPruning()
	return keeper.Pruning{Strategy: strategyName(opts.Strategy), KeepRecent: opts.KeepRecent, Interval: opts.Interval}
}

// AppHash is the app hash of a commit info (keeper.Store).
func (s *Store) AppHash(info cms.CommitInfo) []byte { return infoToSDK(info).Hash() }

func strategyName(s pruningtypes.PruningStrategy) string {
	switch s {
	case pruningtypes.PruningDefault:
		return pruningtypes.PruningOptionDefault
	case pruningtypes.PruningEverything:
		return pruningtypes.PruningOptionEverything
	case pruningtypes.PruningNothing:
		return pruningtypes.PruningOptionNothing
	case pruningtypes.PruningCustom:
		return pruningtypes.PruningOptionCustom
	}
	return "undefined"
}
