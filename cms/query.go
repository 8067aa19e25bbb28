package cms

import (
	"errors"
	"fmt"
	"strings"

	ics23 "github.com/cosmos/ics23/go"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/nomtstore/nomtstore/commitment"
)

// versionMissing is the log IAVL gives a query at a height it does not
// hold (the response carries no value and no error, as with IAVL).
const versionMissing = "version does not exist"

// Request is an ABCI store query (the SDK's RequestQuery).
type Request struct {
	Path   string
	Data   []byte
	Height int64
	Prove  bool
}

// Response is the answer to a Request. With a proof, the adapter makes
// rootmulti's proof ops of it: an ics23:smt op of Key in the store
// (Proof), then the ics23:simple op of the store (ProvedStore) in the
// commit info of Height (ProvedIn).
type Response struct {
	Key, Value []byte
	Height     int64
	Log        string
	// Proof is the ICS23 proof of Key (existence or non-existence) in
	// the store's root at Height.
	Proof *ics23.CommitmentProof
	// IAVLProof says Proof is IAVL's (ics23:iavl): at the version of a
	// switch from IAVL, whose app hash is IAVL's (migrated.go).
	IAVLProof bool
	// ProvedStore and ProvedIn are set by Store.Query when it proves.
	ProvedStore string
	ProvedIn    *CommitInfo
}

// RequireProof reports whether a query of subpath carries a proof when
// asked, as rootmulti.RequireProof does.
func RequireProof(subpath string) bool { return subpath == "/key" }

// ParsePath splits /<store>[/<subpath>], as rootmulti does.
func ParsePath(path string) (storeName, subpath string, err error) {
	if !strings.HasPrefix(path, "/") {
		return "", "", sdkError(ErrUnknownRequest, "invalid path: %s", path)
	}
	parts := strings.SplitN(path[1:], "/", 2)
	storeName = parts[0]
	if len(parts) == 2 {
		subpath = "/" + parts[1]
	}
	return storeName, subpath, nil
}

// Query answers /<store>/key (with prove: the proof of the key in the
// store, and the commit info that proves the store in the app hash) and
// /<store>/subspace, at req.Height (0: the latest but one, as IAVL
// answers, so that the proof matches a header already out).
func (s *Store) Query(req Request) (*Response, error) {
	storeName, subpath, err := ParsePath(req.Path)
	if err != nil {
		return &Response{}, err
	}
	s.mu.RLock()
	key := s.keysByName[storeName]
	var tree *Tree
	var store any
	if key != nil {
		tree, store = s.trees[key], s.stores[key]
	}
	s.mu.RUnlock()
	if key == nil || store == nil {
		return &Response{}, sdkError(ErrUnknownRequest, "no such store: %s", storeName)
	}
	if tree == nil {
		return &Response{}, sdkError(ErrUnknownRequest, "store %s (type %T) doesn't support queries", storeName, store)
	}
	req.Path = subpath
	if req.Prove && RequireProof(subpath) {
		if res, ok, err := s.queryMigratedHeight(storeName, req); ok {
			return res, err
		}
	}
	res, err := tree.Query(req)
	if !req.Prove || !RequireProof(subpath) {
		return res, err
	}
	if err != nil {
		return &Response{}, err
	}
	if res.Proof == nil {
		return &Response{}, sdkError(ErrInvalidRequest, "proof is unexpectedly empty; ensure height has not been pruned")
	}
	info, err := s.GetCommitInfo(res.Height)
	if IsMissingVersion(err) {
		// Pruned between the store's answer and its commit info: the
		// client asked for a height it may no longer read, as one below
		// the earliest would.
		return &Response{}, sdkError(ErrInvalidRequest, "height %d was pruned while it was queried: %v", res.Height, err)
	}
	if err != nil {
		return &Response{}, err
	}
	res.ProvedStore, res.ProvedIn = storeName, info
	return res, nil
}

// QueryHeight is the height a query reads: req.Height, or for 0 the
// latest but one if it is retained, else the latest (IAVL's choice).
func QueryHeight(engine *commitment.DB, height int64) int64 {
	if height != 0 {
		return height
	}
	latest := engine.Version()
	if latest > 1 && latest-1 >= engine.EarliestVersion() {
		return int64(latest - 1)
	}
	return int64(latest)
}

// queryTree answers a store-level query on one tree.
func queryTree(engine *commitment.DB, name string, req Request) (*Response, error) {
	if len(req.Data) == 0 {
		return &Response{}, sdkError(ErrTxDecode, "query cannot be zero length")
	}
	res := &Response{Height: QueryHeight(engine, req.Height)}
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
		if IsMissingVersion(err) {
			res.Log = fmt.Sprintf("%s: %v", versionMissing, err)
			break
		}
		if err != nil {
			return &Response{}, err
		}
		res.Value = value
		if !req.Prove {
			break
		}
		proof, _, err := engine.ProveAt(name, req.Data, version)
		if err != nil {
			return &Response{}, sdkError(ErrInvalidRequest, "proving key %X in store %s at %d: %v", req.Data, name, version, err)
		}
		res.Proof = proof
	case "/subspace":
		res.Key = req.Data
		var pairs []byte
		if res.Height > 0 {
			it, err := engine.NewIteratorAt(name, req.Data, prefixEnd(req.Data), false, uint64(res.Height))
			if IsMissingVersion(err) {
				res.Log = fmt.Sprintf("%s: %v", versionMissing, err)
				break
			}
			if err != nil {
				return &Response{}, err
			}
			for ; it.Valid(); it.Next() {
				pairs = appendPair(pairs, it.Key(), it.Value())
			}
			if err := errors.Join(it.Error(), it.Close()); err != nil {
				return &Response{}, err
			}
		}
		res.Value = pairs
	default:
		return &Response{}, sdkError(ErrUnknownRequest, "unexpected query path: %v", req.Path)
	}
	return res, nil
}

// IsMissingVersion reports whether err is the engine's answer for a
// version it does not hold (pruned, or not committed yet).
func IsMissingVersion(err error) bool {
	return errors.Is(err, commitment.ErrVersionPruned) || errors.Is(err, commitment.ErrVersionFuture)
}

// prefixEnd is the first key after every key with prefix, or nil when
// there is none (the SDK's PrefixEndBytes).
func prefixEnd(prefix []byte) []byte {
	if len(prefix) == 0 {
		return nil
	}
	end := append([]byte(nil), prefix...)
	for len(end) > 0 {
		if end[len(end)-1] != 0xff {
			end[len(end)-1]++
			return end
		}
		end = end[:len(end)-1]
	}
	return nil
}

// appendPair encodes one entry of the store's kv.Pairs message (repeated
// Pair pairs = 1; Pair: bytes key = 1, bytes value = 2), the /subspace
// answer IAVL gives; that type is internal to the SDK's store module.
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
