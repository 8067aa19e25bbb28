package cms

import (
	"bytes"
	"fmt"
	"sync"

	dbm "github.com/cosmos/cosmos-db"
	ics23 "github.com/cosmos/ics23/go"
)

// IAVLTree is one store's IAVL tree at a migrated height, read-only
// (an *iavl.ImmutableTree).
type IAVLTree interface {
	Get(key []byte) ([]byte, error)
	GetMembershipProof(key []byte) (*ics23.CommitmentProof, error)
	GetNonMembershipProof(key []byte) (*ics23.CommitmentProof, error)
}

// IAVLSource is the IAVL data of a migrated height in the application
// database (package migrate opens it).
type IAVLSource interface {
	Tree(store string) (IAVLTree, error)
}

// IAVLOpener opens the IAVL data of height in the application database
// (Options.OpenIAVL; migrate.Opener).
type IAVLOpener func(appDB dbm.DB, height int64) (IAVLSource, error)

// A store migrated from IAVL (package migrate) begins with the version of
// the switch, whose commit record is IAVL's commit info: the app hash
// CometBFT recorded for that height is IAVL's, and so must be any proof
// against it. Such a version is always the earliest retained (nothing is
// below it) and is recognised by its commit info naming store roots that
// are not the engine's. Its proofs are IAVL's, read from the IAVL data the
// migration left in the application database (the chain's relayers need
// them to upgrade the counterparties' clients); every other query at it
// reads the engine, which holds the same keys and values.
type migratedHeight struct {
	mu      sync.Mutex
	checked int64 // the height examined last; carried is its answer
	carried bool
	source  IAVLSource
	trees   map[string]IAVLTree
}

// isMigratedHeight reports whether height is the version of a switch from
// IAVL, whose app hash and proofs are IAVL's.
func (s *Store) isMigratedHeight(height int64) (bool, error) {
	engine := s.engine
	if height <= 0 || uint64(height) != engine.EarliestVersion() {
		return false, nil
	}
	m := &s.migrated
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.checked == height {
		return m.carried, nil
	}
	info, err := s.GetCommitInfo(height)
	if err != nil {
		return false, err
	}
	roots, err := engine.RootsAt(uint64(height))
	if err != nil {
		return false, err
	}
	carried := false
	for _, si := range info.Stores {
		if root, ok := roots[si.Name]; ok && !bytes.Equal(root[:], si.CommitID.Hash) {
			carried = true
			break
		}
	}
	m.checked, m.carried, m.source, m.trees = height, carried, nil, nil
	return carried, nil
}

// queryMigratedHeight answers a proved /key query at the version of a
// switch from IAVL with IAVL's proof (Response.IAVLProof), or says it
// cannot; ok is false for any other query, which the engine answers.
func (s *Store) queryMigratedHeight(storeName string, req Request) (res *Response, ok bool, err error) {
	height := QueryHeight(s.engine, req.Height)
	if carried, err := s.isMigratedHeight(height); err != nil || !carried {
		return nil, false, nil // a height the engine cannot read answers as usual
	}
	if len(req.Data) == 0 {
		return &Response{}, true, sdkError(ErrTxDecode, "query cannot be zero length")
	}
	tree, err := s.migratedTree(storeName, height)
	if err != nil {
		return &Response{}, true, sdkError(ErrInvalidRequest,
			"height %d is where this chain moved from IAVL to nomtstore: its app hash is IAVL's and so must its proofs be, but the IAVL data of that height is not available here (%v); query a later height, or a node that kept application.db",
			height, err)
	}
	value, err := tree.Get(req.Data)
	if err != nil {
		return &Response{}, true, err
	}
	var proof *ics23.CommitmentProof
	if value != nil {
		proof, err = tree.GetMembershipProof(req.Data)
	} else {
		proof, err = tree.GetNonMembershipProof(req.Data)
	}
	if err != nil {
		return &Response{}, true, sdkError(ErrInvalidRequest, "proving key %X in IAVL store %s at %d: %v", req.Data, storeName, height, err)
	}
	info, err := s.GetCommitInfo(height)
	if err != nil {
		return &Response{}, true, err
	}
	return &Response{
		Key: req.Data, Value: value, Height: height,
		Proof: proof, IAVLProof: true, ProvedStore: storeName, ProvedIn: info,
	}, true, nil
}

// migratedTree opens (once) a store's IAVL tree at the migrated height
// from the application database, read-only.
func (s *Store) migratedTree(storeName string, height int64) (IAVLTree, error) {
	m := &s.migrated
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.trees[storeName]; t != nil && m.checked == height {
		return t, nil
	}
	if s.appDB == nil {
		return nil, fmt.Errorf("the store has no application database")
	}
	if s.openIAVL == nil {
		return nil, fmt.Errorf("this store was opened without a reader of IAVL data (cms.Options.OpenIAVL)")
	}
	if m.source == nil {
		src, err := s.openIAVL(s.appDB, height)
		if err != nil {
			return nil, err
		}
		m.source, m.trees = src, map[string]IAVLTree{}
	}
	t, err := m.source.Tree(storeName)
	if err != nil {
		return nil, err
	}
	m.trees[storeName] = t
	return t, nil
}
