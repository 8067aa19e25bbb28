package migrate

import (
	"errors"
	"fmt"
	"slices"

	"cosmossdk.io/log"
	dbm "github.com/cosmos/cosmos-db"
	gogotypes "github.com/cosmos/gogoproto/types"
	"github.com/cosmos/iavl"
	idb "github.com/cosmos/iavl/db"

	"github.com/nomtstore/nomtstore/cms"
)

// rootmulti's layout of application.db: each IAVL store's nodes under
// "s/k:<name>/", the commit info of each height under "s/<height>", the
// latest height under "s/latest".
const (
	iavlLatestKey     = "s/latest"
	iavlCommitInfoFmt = "s/%d"
	iavlStorePrefix   = "s/k:%s/"
)

// ErrIAVLHeight is the error for a height the IAVL database does not hold.
var ErrIAVLHeight = errors.New("migrate: IAVL does not have that height")

// ErrReadOnly is what a write to the IAVL database gets: the migration
// leaves it exactly as it found it.
var ErrReadOnly = errors.New("migrate: the IAVL database is read-only here")

// Source is an SDK application database on IAVL (rootmulti's
// application.db) at one height, read without writing anything.
type Source struct {
	db     dbm.DB
	height int64
	// Info is the commit info IAVL stored for the height.
	Info cms.CommitInfo
	// AppHash is Info's hash: the app hash CometBFT recorded.
	AppHash []byte
	// RawInfo is Info as stored, carried verbatim into nomtstore.
	RawInfo []byte
}

// DecodeCommitInfo decodes a commit info as rootmulti stores it and
// hashes it, with an SDK line's generated type (both lines' rootmulti
// write the same layout and bytes; the caller's line decodes them).
type DecodeCommitInfo func(raw []byte) (info cms.CommitInfo, appHash []byte, err error)

// OpenSource reads the commit info of height (0: the latest) from an IAVL
// application database.
func OpenSource(db dbm.DB, height int64, decode DecodeCommitInfo) (*Source, error) {
	latest, err := IAVLLatestHeight(db)
	if err != nil {
		return nil, err
	}
	if latest == 0 {
		return nil, errors.New("migrate: the application database holds no IAVL state (no s/latest): is it a node's data/application.db, and has the node committed a block?")
	}
	if height == 0 {
		height = latest
	}
	if height < 0 || height > latest {
		return nil, fmt.Errorf("%w: height %d, the latest is %d", ErrIAVLHeight, height, latest)
	}
	raw, err := db.Get(fmt.Appendf(nil, iavlCommitInfoFmt, height))
	if err != nil {
		return nil, fmt.Errorf("migrate: reading IAVL's commit info of height %d: %w", height, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: height %d has no commit info (pruned?); the latest is %d", ErrIAVLHeight, height, latest)
	}
	info, appHash, err := decode(raw)
	if err != nil {
		return nil, fmt.Errorf("migrate: IAVL's commit info of height %d is corrupt: %w", height, err)
	}
	if info.Version != height {
		return nil, fmt.Errorf("migrate: IAVL's commit info stored for height %d says height %d: the database is corrupt", height, info.Version)
	}
	return &Source{db: readOnlyDB{emptyValuesKept{db}}, height: height, Info: info, AppHash: appHash, RawInfo: raw}, nil
}

// IAVLLatestHeight is rootmulti's latest height in db, 0 if none.
func IAVLLatestHeight(db dbm.DB) (int64, error) {
	raw, err := db.Get([]byte(iavlLatestKey))
	if err != nil {
		return 0, fmt.Errorf("migrate: reading IAVL's latest height: %w", err)
	}
	if raw == nil {
		return 0, nil
	}
	// rootmulti stores it as a protobuf Int64Value.
	var latest int64
	if err := gogotypes.StdInt64Unmarshal(&latest, raw); err != nil {
		return 0, fmt.Errorf("migrate: IAVL's latest height record is corrupt: %w", err)
	}
	return latest, nil
}

// Height is the height the source reads.
func (s *Source) Height() int64 { return s.height }

// Stores names the stores of the commit info, in its (sorted) order.
func (s *Source) Stores() []string {
	names := make([]string, 0, len(s.Info.Stores))
	for _, si := range s.Info.Stores {
		names = append(names, si.Name)
	}
	return names
}

// Tree opens one store's IAVL tree at the source's height. Its iterator
// reads IAVL's fast index (leaves by key, no tree walk) when the height is
// the tree's latest and the index is complete; otherwise it walks the tree.
func (s *Source) Tree(name string) (*iavl.ImmutableTree, error) {
	db := idb.NewWrapper(dbm.NewPrefixDB(s.db, fmt.Appendf(nil, iavlStorePrefix, name)))
	tree := iavl.NewMutableTree(db, 0, false, log.NewNopLogger())
	// With an index IAVL considers stale, loading would rebuild it (a
	// write): such a tree is read by walking it instead.
	stale, err := tree.IsUpgradeable()
	if err != nil {
		return nil, fmt.Errorf("migrate: store %q: %w", name, err)
	}
	if stale {
		tree = iavl.NewMutableTree(db, 0, true, log.NewNopLogger())
	}
	if _, err := tree.LoadVersion(s.height); err != nil {
		if versions := tree.AvailableVersions(); len(versions) > 0 {
			return nil, fmt.Errorf("migrate: store %q at height %d: %w (its tree holds versions %d..%d)", name, s.height, err, versions[0], versions[len(versions)-1])
		}
		return nil, fmt.Errorf("migrate: store %q at height %d: %w (its tree holds no version)", name, s.height, err)
	}
	imm, err := tree.GetImmutable(s.height)
	if err != nil {
		return nil, fmt.Errorf("migrate: store %q at height %d: %w", name, s.height, err)
	}
	if got, want := imm.Hash(), s.storeHash(name); string(got) != string(want) {
		return nil, fmt.Errorf("migrate: store %q: IAVL's root at height %d is %X but the commit info says %X: the database is corrupt", name, s.height, got, want)
	}
	return imm, nil
}

func (s *Source) storeHash(name string) []byte {
	si, _ := s.Info.Store(name)
	return si.CommitID.Hash
}

// emptyValuesKept answers an empty value as an empty slice rather than
// nil. IAVL v1 stores an empty tree's root as an empty value and reads a nil
// one as a missing version; goleveldb after the version the SDK pins
// returns nil for an empty value. A node built without the SDK's pin cannot
// load an empty store of its own (an authz store nobody has used yet) but
// wrote it correctly, and its migration must not fail on it. A miss is told
// from an empty value by a one-key iteration.
type emptyValuesKept struct{ dbm.DB }

func (d emptyValuesKept) Get(key []byte) ([]byte, error) {
	value, err := d.DB.Get(key)
	if value != nil || err != nil {
		return value, err
	}
	present, err := d.present(key)
	if err != nil || !present {
		return nil, err
	}
	return []byte{}, nil
}

func (d emptyValuesKept) Has(key []byte) (bool, error) {
	has, err := d.DB.Has(key)
	if has || err != nil {
		return has, err
	}
	return d.present(key)
}

func (d emptyValuesKept) present(key []byte) (bool, error) {
	// [key, key+0x00) holds exactly key.
	it, err := d.Iterator(key, append(slices.Clip(key), 0))
	if err != nil {
		return false, err
	}
	valid := it.Valid()
	if err := it.Error(); err != nil {
		_ = it.Close()
		return false, err
	}
	return valid, it.Close()
}

// readOnlyDB refuses every write, so that nothing the migration calls
// (IAVL's loading included) can change the source.
type readOnlyDB struct{ dbm.DB }

func (readOnlyDB) Set([]byte, []byte) error       { return ErrReadOnly }
func (readOnlyDB) SetSync([]byte, []byte) error   { return ErrReadOnly }
func (readOnlyDB) Delete([]byte) error            { return ErrReadOnly }
func (readOnlyDB) DeleteSync([]byte) error        { return ErrReadOnly }
func (readOnlyDB) NewBatch() dbm.Batch            { return readOnlyBatch{} }
func (readOnlyDB) NewBatchWithSize(int) dbm.Batch { return readOnlyBatch{} }
func (readOnlyDB) Compact([]byte, []byte) error   { return ErrReadOnly }
func (r readOnlyDB) Close() error                 { return nil } // the caller's to close
func (readOnlyDB) Print() error                   { return nil }

type readOnlyBatch struct{}

func (readOnlyBatch) Set([]byte, []byte) error { return ErrReadOnly }
func (readOnlyBatch) Delete([]byte) error      { return ErrReadOnly }
func (readOnlyBatch) Write() error             { return ErrReadOnly }
func (readOnlyBatch) WriteSync() error         { return ErrReadOnly }
func (readOnlyBatch) Close() error             { return nil }
func (readOnlyBatch) GetByteSize() (int, error) {
	return 0, nil
}

// Opener is how a store answers IAVL's proofs at the version of a switch
// from IAVL (cms.Options.OpenIAVL): it opens the height's IAVL data in
// the application database, decoding commit infos with decode.
func Opener(decode DecodeCommitInfo) cms.IAVLOpener {
	return func(appDB dbm.DB, height int64) (cms.IAVLSource, error) {
		src, err := OpenSource(appDB, height, decode)
		if err != nil {
			return nil, err
		}
		return iavlSource{src}, nil
	}
}

type iavlSource struct{ *Source }

func (s iavlSource) Tree(name string) (cms.IAVLTree, error) { return s.Source.Tree(name) }
