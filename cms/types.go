package cms

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	dbm "github.com/cosmos/cosmos-db"
)

// StoreKey is a mounted store's key. Both SDK lines' key types have this
// method set, so their keys are used as they are (as map keys too: a key
// is a pointer).
type StoreKey interface {
	Name() string
	String() string
}

// Kind is the kind of a mounted store.
type Kind uint8

const (
	// KindTree is an engine tree: the SDK's IAVL store type.
	KindTree Kind = iota + 1
	// KindDB is a store written straight to a database, outside the
	// commitment (the SDK's StoreTypeDB).
	KindDB
	// KindTransient is emptied at each commit (StoreTypeTransient).
	KindTransient
	// KindMemory lives in memory across commits (StoreTypeMemory).
	KindMemory
	// KindObject is store/v2's transient store of Go values
	// (StoreTypeObject): emptied at each commit, like KindTransient.
	KindObject
)

// CommitID is a version and a root hash.
type CommitID struct {
	Version int64
	Hash    []byte
}

// StoreInfo is one store's entry in a version's commit info.
type StoreInfo struct {
	Name     string
	CommitID CommitID
}

// CommitInfo is a version's commit info, as the SDK's rootmulti records
// it: the stores' commit IDs, sorted by name, and the block time. Each
// line's adapter encodes it with the SDK's generated type (both lines'
// encode the same bytes), so that the app hash and the ics23:simple proof
// of a store are the SDK's.
type CommitInfo struct {
	Version   int64
	Stores    []StoreInfo
	Timestamp time.Time
}

// Store returns the named store's entry.
func (c CommitInfo) Store(name string) (StoreInfo, bool) {
	for _, si := range c.Stores {
		if si.Name == name {
			return si, true
		}
	}
	return StoreInfo{}, false
}

func sortInfos(infos []StoreInfo) {
	slices.SortStableFunc(infos, func(a, b StoreInfo) int { return strings.Compare(a.Name, b.Name) })
}

// Rename is a store renamed by an upgrade.
type Rename struct{ Old, New string }

// Upgrades are the store upgrades applied at a load (the SDK's
// StoreUpgrades). A nil *Upgrades is none.
type Upgrades struct {
	Added   []string
	Renamed []Rename
	Deleted []string
}

// IsAdded reports whether name is an added store.
func (u *Upgrades) IsAdded(name string) bool { return u != nil && slices.Contains(u.Added, name) }

// IsDeleted reports whether name is a deleted store.
func (u *Upgrades) IsDeleted(name string) bool { return u != nil && slices.Contains(u.Deleted, name) }

// RenamedFrom returns the old name of a renamed store, or "".
func (u *Upgrades) RenamedFrom(name string) string {
	if u == nil {
		return ""
	}
	for _, r := range u.Renamed {
		if r.New == name {
			return r.Old
		}
	}
	return ""
}

// Line is what an SDK line's adapter supplies: the SDK's own stores and
// the SDK's encoding of a commit info. Its methods may be called with the
// Store's lock held (all but DecodeCommitInfo are) and must not call the
// Store; they may take the adapter's own lock (the order is: the Store's,
// then the adapter's).
type Line interface {
	// NewSDKStore builds a store of a kind other than KindTree. db is the
	// database of a KindDB store (already prefixed as rootmulti
	// prefixes it), nil for the other kinds.
	NewSDKStore(key StoreKey, kind Kind, db dbm.DB) (any, error)
	// CommitSDKStore commits a store NewSDKStore built, as rootmulti
	// commits it (a transient store is emptied). inInfo reports whether
	// its ID belongs in the commit info (a DB store's does).
	CommitSDKStore(store any) (id CommitID, inInfo bool)
	// ServeTrees returns, for each tree of a load, the store the app is
	// given: the adapter's wrapper of the tree, maybe inter-block cached.
	// It is called once per load, with every tree loaded: live, and those
	// an upgrade deletes at the next commit (leaving; not to be cached).
	ServeTrees(live, leaving map[StoreKey]*Tree) map[StoreKey]any
	// EncodeCommitInfo and DecodeCommitInfo are the SDK's encoding of a
	// commit info: the version record the engine keeps.
	EncodeCommitInfo(CommitInfo) ([]byte, error)
	DecodeCommitInfo([]byte) (CommitInfo, error)
}

// ErrorKind is which of the SDK's registered errors an Error stands for:
// the adapter wraps the message in its line's error of that kind, so
// that ABCI answers carry the SDK's codespace and code.
type ErrorKind uint8

const (
	// ErrUnknownRequest is the SDK's ErrUnknownRequest.
	ErrUnknownRequest ErrorKind = iota + 1
	// ErrInvalidRequest is the SDK's ErrInvalidRequest.
	ErrInvalidRequest
	// ErrTxDecode is the SDK's ErrTxDecode.
	ErrTxDecode
	// ErrLogic is the SDK's ErrLogic.
	ErrLogic
)

// Error is an error the SDK reports with one of its registered errors.
type Error struct {
	Kind ErrorKind
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func sdkError(kind ErrorKind, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// AsError returns err's *Error, if it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
