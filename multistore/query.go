package multistore

import (
	"errors"
	"fmt"
	"strings"

	errorsmod "cosmossdk.io/errors"
	"cosmossdk.io/store/metrics"
	"cosmossdk.io/store/rootmulti"
	"cosmossdk.io/store/types"
	cmtprotocrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/nomtstore/nomtstore/commitment"
)

// versionMissing is the log IAVL gives a query at a height it does not
// hold (the response carries no value and no error, as with IAVL).
const versionMissing = "version does not exist"

// Query answers /<store>/key (with prove: an ics23:smt proof of the key in
// the store, then rootmulti's ics23:simple proof of the store in the app
// hash) and /<store>/subspace, at req.Height (0: the latest but one, as
// IAVL answers, so that the proof matches a header already out).
func (s *Store) Query(req *types.RequestQuery) (*types.ResponseQuery, error) {
	storeName, subpath, err := parsePath(req.Path)
	if err != nil {
		return &types.ResponseQuery{}, err
	}
	store := s.GetStoreByName(storeName)
	if store == nil {
		return &types.ResponseQuery{}, errorsmod.Wrapf(types.ErrUnknownRequest, "no such store: %s", storeName)
	}
	queryable, ok := store.(types.Queryable)
	if !ok {
		return &types.ResponseQuery{}, errorsmod.Wrapf(types.ErrUnknownRequest, "store %s (type %T) doesn't support queries", storeName, store)
	}
	req.Path = subpath
	if req.Prove && rootmulti.RequireProof(subpath) && s.isTree(storeName) {
		if res, ok, err := s.queryMigratedHeight(storeName, req); ok {
			return res, err
		}
	}
	res, err := queryable.Query(req)
	if !req.Prove || !rootmulti.RequireProof(subpath) {
		return res, err
	}
	if err != nil {
		return &types.ResponseQuery{}, err
	}
	if res.ProofOps == nil || len(res.ProofOps.Ops) == 0 {
		return &types.ResponseQuery{}, errorsmod.Wrap(types.ErrInvalidRequest, "proof is unexpectedly empty; ensure height has not been pruned")
	}
	info, err := s.GetCommitInfo(res.Height)
	if isMissingVersion(err) {
		// Pruned between the store's answer and its commit info: the
		// client asked for a height it may no longer read, as one below
		// the earliest would.
		return &types.ResponseQuery{}, errorsmod.Wrapf(types.ErrInvalidRequest, "height %d was pruned while it was queried: %v", res.Height, err)
	}
	if err != nil {
		return &types.ResponseQuery{}, err
	}
	res.ProofOps.Ops = append(res.ProofOps.Ops, info.ProofOp(storeName))
	return res, nil
}

// parsePath splits /<store>[/<subpath>], as rootmulti does.
func parsePath(path string) (storeName, subpath string, err error) {
	if !strings.HasPrefix(path, "/") {
		return "", "", errorsmod.Wrapf(types.ErrUnknownRequest, "invalid path: %s", path)
	}
	parts := strings.SplitN(path[1:], "/", 2)
	storeName = parts[0]
	if len(parts) == 2 {
		subpath = "/" + parts[1]
	}
	return storeName, subpath, nil
}

// queryHeight is the height a query reads: req.Height, or for 0 the latest
// but one if it is retained, else the latest (IAVL's choice).
func queryHeight(engine *commitment.DB, req *types.RequestQuery) int64 {
	if req.Height != 0 {
		return req.Height
	}
	latest := engine.Version()
	if latest > 1 && latest-1 >= engine.EarliestVersion() {
		return int64(latest - 1)
	}
	return int64(latest)
}

// queryTree answers a store-level query on one tree.
func queryTree(engine *commitment.DB, name string, req *types.RequestQuery, m metrics.StoreMetrics) (*types.ResponseQuery, error) {
	defer m.MeasureSince("store", "nomtstore", "query")
	if len(req.Data) == 0 {
		return &types.ResponseQuery{}, errorsmod.Wrap(types.ErrTxDecode, "query cannot be zero length")
	}
	res := &types.ResponseQuery{Height: queryHeight(engine, req)}
	switch req.Path {
	case "/key":
		res.Key = req.Data
		if res.Height == 0 {
			// Nothing committed yet: IAVL answers no value and no log.
			break
		}
		if res.Height < 0 {
			res.Log = versionMissing
			break
		}
		version := uint64(res.Height)
		value, err := engine.GetAt(name, req.Data, version)
		if isMissingVersion(err) {
			res.Log = fmt.Sprintf("%s: %v", versionMissing, err)
			break
		}
		if err != nil {
			return &types.ResponseQuery{}, err
		}
		res.Value = value
		if !req.Prove {
			break
		}
		proof, _, err := engine.ProveAt(name, req.Data, version)
		if err != nil {
			return &types.ResponseQuery{}, errorsmod.Wrapf(types.ErrInvalidRequest, "proving key %X in store %s at %d: %v", req.Data, name, version, err)
		}
		op := types.NewSmtCommitmentOp(req.Data, proof).ProofOp()
		res.ProofOps = &cmtprotocrypto.ProofOps{Ops: []cmtprotocrypto.ProofOp{op}}
	case "/subspace":
		res.Key = req.Data
		var pairs []byte
		if res.Height > 0 {
			it, err := engine.NewIteratorAt(name, req.Data, types.PrefixEndBytes(req.Data), false, uint64(res.Height))
			if isMissingVersion(err) {
				res.Log = fmt.Sprintf("%s: %v", versionMissing, err)
				break
			}
			if err != nil {
				return &types.ResponseQuery{}, err
			}
			for ; it.Valid(); it.Next() {
				pairs = appendPair(pairs, it.Key(), it.Value())
			}
			if err := errors.Join(it.Error(), it.Close()); err != nil {
				return &types.ResponseQuery{}, err
			}
		}
		res.Value = pairs
	default:
		return &types.ResponseQuery{}, errorsmod.Wrapf(types.ErrUnknownRequest, "unexpected query path: %v", req.Path)
	}
	return res, nil
}

func isMissingVersion(err error) bool {
	return errors.Is(err, commitment.ErrVersionPruned) || errors.Is(err, commitment.ErrVersionFuture)
}

// appendPair encodes one entry of the store's kv.Pairs message (repeated
// Pair pairs = 1; Pair: bytes key = 1, bytes value = 2), the /subspace
// answer IAVL gives; that type is internal to cosmossdk.io/store.
func appendPair(b, key, value []byte) []byte {
	var pair []byte
	if len(key) > 0 { // proto3 leaves empty fields out
		pair = protowire.AppendTag(pair, 1, protowire.BytesType)
		pair = protowire.AppendBytes(pair, key)
	}
	if len(value) > 0 {
		pair = protowire.AppendTag(pair, 2, protowire.BytesType)
		pair = protowire.AppendBytes(pair, value)
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendBytes(b, pair)
}
