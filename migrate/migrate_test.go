package migrate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"cosmossdk.io/log"
	"cosmossdk.io/store/rootmulti"
	snapshottypes "cosmossdk.io/store/snapshots/types"
	"cosmossdk.io/store/types"
	"github.com/cometbft/cometbft/crypto/merkle"
	dbm "github.com/cosmos/cosmos-db"
	protoio "github.com/cosmos/gogoproto/io"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/commitment/vfs"
	"github.com/nomtstore/nomtstore/internal/iavltest"
	"github.com/nomtstore/nomtstore/migrate"
	"github.com/nomtstore/nomtstore/multistore"
)

var storeNames = []string{"acc", "bank", "ibc", "upgrade"}

// emptyStore is mounted and never written, as authz or group on a fresh
// chain: IAVL stores only empty roots for it.
const emptyStore = "authz"

// iavlChain is an SDK application database on IAVL, as a node's
// application.db: rootmulti over goleveldb, with a model of each height's
// state.
type iavlChain struct {
	dir    string
	db     dbm.DB
	states map[int64]map[string]map[string]string // height, store, key
	hashes map[int64][]byte
	latest int64
}

// newIAVLChain commits heights blocks of random writes and deletes.
func newIAVLChain(t *testing.T, heights, keysPerBlock int) *iavlChain {
	t.Helper()
	dir := t.TempDir()
	db, err := dbm.NewDB("application", dbm.GoLevelDBBackend, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	rs, keys := iavltest.NewRootMulti(t, db, append(slices.Clone(storeNames), emptyStore)...)
	c := &iavlChain{dir: dir, db: db, states: map[int64]map[string]map[string]string{}, hashes: map[int64][]byte{}}
	rng := rand.New(rand.NewPCG(1, uint64(heights)))
	state := map[string]map[string]string{}
	for _, name := range storeNames {
		state[name] = map[string]string{}
	}
	for h := 1; h <= heights; h++ {
		for i := 0; i < keysPerBlock; i++ {
			name := storeNames[rng.IntN(len(storeNames))]
			store := rs.GetCommitKVStore(keys[name])
			key := fmt.Sprintf("k%06d", rng.IntN(keysPerBlock*heights/2+1))
			if rng.IntN(5) == 0 {
				store.Delete([]byte(key))
				delete(state[name], key)
				continue
			}
			value := fmt.Sprintf("v%d-%d", h, rng.Uint32())
			store.Set([]byte(key), []byte(value))
			state[name][key] = value
		}
		id := rs.Commit()
		snapshot := map[string]map[string]string{}
		for name, kv := range state {
			snapshot[name] = map[string]string{}
			for k, v := range kv {
				snapshot[name][k] = v
			}
		}
		c.states[id.Version], c.hashes[id.Version], c.latest = snapshot, id.Hash, id.Version
	}
	return c
}

func (c *iavlChain) keys(height int64) int64 {
	var n int64
	for _, kv := range c.states[height] {
		n += int64(len(kv))
	}
	return n
}

func digest(t *testing.T, db dbm.DB) [32]byte {
	t.Helper()
	return iavltest.Digest(t, db)
}

func migrateTo(t *testing.T, c *iavlChain, height int64, dir string, opts migrate.Options) (*migrate.Result, error) {
	t.Helper()
	src, err := migrate.OpenSource(c.db, height, multistore.DecodeCommitInfo)
	if err != nil {
		return nil, err
	}
	return migrate.FromIAVL(context.Background(), src, dir, opts)
}

func openMultistore(t *testing.T, dir string, appDB dbm.DB) *multistore.Store {
	t.Helper()
	s, err := multistore.New(dir, nil, multistore.Options{AppDB: appDB})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for _, name := range append(slices.Clone(storeNames), emptyStore) {
		s.MountStoreWithDB(types.NewKVStoreKey(name), types.StoreTypeIAVL, nil)
	}
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	return s
}

func proofRuntime() *merkle.ProofRuntime {
	prt := rootmulti.DefaultProofRuntime()
	prt.RegisterOpDecoder(types.ProofOpSMTCommitment, types.CommitmentOpDecoder)
	return prt
}

// checkProof queries key in store at height with a proof and verifies it
// against appHash, expecting a proof op of proofType first.
func checkProof(t *testing.T, s *multistore.Store, store, key string, height int64, appHash []byte, want *string, proofType string) {
	t.Helper()
	res, err := s.Query(&types.RequestQuery{Path: "/" + store + "/key", Data: []byte(key), Height: height, Prove: true})
	if err != nil {
		t.Fatalf("query %s/%s at %d: %v", store, key, height, err)
	}
	if res.Height != height || res.ProofOps == nil || len(res.ProofOps.Ops) != 2 || res.ProofOps.Ops[0].Type != proofType {
		t.Fatalf("query %s/%s at %d: height %d, proof %+v; want a %s proof", store, key, height, res.Height, res.ProofOps, proofType)
	}
	keyPath := merkle.KeyPath{}.AppendKey([]byte(store), merkle.KeyEncodingURL).AppendKey([]byte(key), merkle.KeyEncodingURL).String()
	if want != nil {
		if string(res.Value) != *want {
			t.Fatalf("query %s/%s at %d: value %q, want %q", store, key, height, res.Value, *want)
		}
		err = proofRuntime().VerifyValue(res.ProofOps, appHash, keyPath, res.Value)
	} else {
		if res.Value != nil {
			t.Fatalf("query %s/%s at %d: value %q, want none", store, key, height, res.Value)
		}
		err = proofRuntime().VerifyAbsence(res.ProofOps, appHash, keyPath)
	}
	if err != nil {
		t.Fatalf("query %s/%s at %d: the proof does not verify against the app hash: %v", store, key, height, err)
	}
}

func TestFromIAVL(t *testing.T) {
	c := newIAVLChain(t, 12, 300)
	for _, tc := range []struct {
		name   string
		height int64
	}{
		{"latest height, read from IAVL's fast index", c.latest},
		{"past height, read by walking the tree", c.latest - 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := digest(t, c.db)
			dir := filepath.Join(t.TempDir(), "nomtstore")
			var phases []string
			res, err := migrateTo(t, c, tc.height, dir, migrate.Options{Progress: func(p migrate.Progress) {
				if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
					phases = append(phases, p.Phase)
				}
				if p.TotalKeys != c.keys(tc.height) {
					t.Errorf("progress %+v: total %d, want %d", p, p.TotalKeys, c.keys(tc.height))
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			if digest(t, c.db) != before {
				t.Fatal("the migration changed the IAVL database")
			}
			if res.Height != tc.height || string(res.AppHash) != string(c.hashes[tc.height]) || res.Keys != c.keys(tc.height) || res.Resumed || res.DiskBytes == 0 {
				t.Fatalf("result %+v; want height %d, app hash %X, %d keys", res, tc.height, c.hashes[tc.height], c.keys(tc.height))
			}
			if fmt.Sprint(phases) != "[copy build verify]" {
				t.Errorf("progress phases %v", phases)
			}

			s := openMultistore(t, dir, c.db)
			if id := s.LastCommitID(); id.Version != tc.height || string(id.Hash) != string(c.hashes[tc.height]) {
				t.Fatalf("migrated store's last commit %d %X; want IAVL's %d %X", id.Version, id.Hash, tc.height, c.hashes[tc.height])
			}
			state := c.states[tc.height]
			for _, name := range storeNames {
				store := s.GetKVStore(s.StoreKeysByName()[name])
				for k, v := range state[name] {
					if got := store.Get([]byte(k)); string(got) != v {
						t.Fatalf("%s/%s = %q, want %q", name, k, got, v)
					}
				}
			}
			// At the migrated height proofs are IAVL's, against IAVL's app
			// hash; a snapshot of it is refused.
			for k, v := range state["bank"] {
				checkProof(t, s, "bank", k, tc.height, c.hashes[tc.height], &v, types.ProofOpIAVLCommitment)
				break
			}
			checkProof(t, s, "bank", "absent", tc.height, c.hashes[tc.height], nil, types.ProofOpIAVLCommitment)
			if err := s.Snapshot(uint64(tc.height), nil); err == nil {
				t.Error("a snapshot of the migrated height was taken")
			}

			// The next block commits nomtstore's roots; its proofs are
			// nomtstore's.
			s.GetKVStore(s.StoreKeysByName()["bank"]).Set([]byte("after"), []byte("switch"))
			next := s.Commit()
			if next.Version != tc.height+1 || string(next.Hash) == string(c.hashes[tc.height]) {
				t.Fatalf("next commit %d %X", next.Version, next.Hash)
			}
			after := "switch"
			checkProof(t, s, "bank", "after", next.Version, next.Hash, &after, types.ProofOpSMTCommitment)
			checkProof(t, s, "bank", "after", tc.height, c.hashes[tc.height], nil, types.ProofOpIAVLCommitment)
			// Height 0 reads the latest but one: the migrated height.
			res2, err := s.Query(&types.RequestQuery{Path: "/acc/key", Data: []byte("absent"), Prove: true})
			if err != nil || res2.Height != tc.height || res2.ProofOps.Ops[0].Type != types.ProofOpIAVLCommitment {
				t.Fatalf("query at height 0: %+v %v", res2, err)
			}
		})
	}
}

// emptyReadsNil is goleveldb as it behaves after the version the SDK
// pins: an empty value reads as nil and Has says false for it.
type emptyReadsNil struct{ dbm.DB }

func (d emptyReadsNil) Get(key []byte) ([]byte, error) {
	v, err := d.DB.Get(key)
	if len(v) == 0 {
		return nil, err
	}
	return v, err
}

func (d emptyReadsNil) Has(key []byte) (bool, error) {
	v, err := d.Get(key)
	return v != nil, err
}

// TestFromIAVLEmptyValuesReadAsNil: a node built without the SDK's
// goleveldb pin reads its empty stores' roots (empty values) as missing
// versions; the migration, and the IAVL proofs at the switch height, still
// read them.
func TestFromIAVLEmptyValuesReadAsNil(t *testing.T) {
	c := newIAVLChain(t, 6, 100)
	db := emptyReadsNil{c.db}
	for _, height := range []int64{c.latest, c.latest - 2} {
		src, err := migrate.OpenSource(db, height, multistore.DecodeCommitInfo)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "nomtstore")
		res, err := migrate.FromIAVL(context.Background(), src, dir, migrate.Options{})
		if err != nil {
			t.Fatalf("height %d: %v", height, err)
		}
		if string(res.AppHash) != string(c.hashes[height]) || res.Keys != c.keys(height) {
			t.Fatalf("height %d: result %+v; want app hash %X, %d keys", height, res, c.hashes[height], c.keys(height))
		}
		// At the switch height the empty store is read from the IAVL data
		// (an absence proof in an empty IAVL tree is IAVL's to refuse).
		s := openMultistore(t, dir, db)
		q, err := s.Query(&types.RequestQuery{Path: "/" + emptyStore + "/key", Data: []byte("absent"), Height: height})
		if err != nil || q.Value != nil || q.Height != height {
			t.Fatalf("height %d: query of the empty store: %+v %v", height, q, err)
		}
		for k, v := range c.states[height]["bank"] {
			checkProof(t, s, "bank", k, height, c.hashes[height], &v, types.ProofOpIAVLCommitment)
			break
		}
	}
}

func TestFromIAVLWithoutTheIAVLData(t *testing.T) {
	c := newIAVLChain(t, 3, 100)
	dir := filepath.Join(t.TempDir(), "nomtstore")
	if _, err := migrateTo(t, c, 0, dir, migrate.Options{}); err != nil {
		t.Fatal(err)
	}
	// A node that deleted application.db's IAVL data after the switch:
	// proofs at the migrated height are refused, clearly; values are read.
	s := openMultistore(t, dir, dbm.NewMemDB())
	_, err := s.Query(&types.RequestQuery{Path: "/acc/key", Data: []byte("k"), Height: c.latest, Prove: true})
	if err == nil || !errorsContains(err, "moved from IAVL") {
		t.Fatalf("proof at the migrated height without IAVL's data: %v", err)
	}
	if _, err := s.Query(&types.RequestQuery{Path: "/acc/key", Data: []byte("k"), Height: c.latest}); err != nil {
		t.Fatalf("unproved query at the migrated height: %v", err)
	}
}

func errorsContains(err error, sub string) bool {
	return err != nil && strings.Contains(err.Error(), sub)
}

func engineVersion(t *testing.T, dir string) uint64 {
	t.Helper()
	db, err := commitment.Open(dir, nil, commitment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	return db.Version()
}

func TestFromIAVLRefuses(t *testing.T) {
	c := newIAVLChain(t, 4, 50)
	t.Run("a height IAVL does not have", func(t *testing.T) {
		for _, h := range []int64{c.latest + 1, -1} {
			if _, err := migrate.OpenSource(c.db, h, multistore.DecodeCommitInfo); !errors.Is(err, migrate.ErrIAVLHeight) {
				t.Errorf("height %d: %v", h, err)
			}
		}
	})
	t.Run("a database without IAVL state", func(t *testing.T) {
		if _, err := migrate.OpenSource(dbm.NewMemDB(), 0, multistore.DecodeCommitInfo); err == nil {
			t.Error("migrated an empty database")
		}
	})
	t.Run("corrupt commit info", func(t *testing.T) {
		db := dbm.NewMemDB()
		copyDB(t, c.db, db)
		if err := db.Set(fmt.Appendf(nil, "s/%d", c.latest), []byte("\xff\xff\xff garbage")); err != nil {
			t.Fatal(err)
		}
		if _, err := migrate.OpenSource(db, 0, multistore.DecodeCommitInfo); err == nil || !errorsContains(err, "corrupt") {
			t.Errorf("corrupt commit info: %v", err)
		}
	})
	t.Run("a commit info naming other roots", func(t *testing.T) {
		db := dbm.NewMemDB()
		copyDB(t, c.db, db)
		src, err := migrate.OpenSource(db, 0, multistore.DecodeCommitInfo)
		if err != nil {
			t.Fatal(err)
		}
		src.Info.Stores[1].CommitID.Hash = make([]byte, 32)
		if _, err := migrate.FromIAVL(context.Background(), src, t.TempDir(), migrate.Options{}); err == nil || !errorsContains(err, "corrupt") {
			t.Errorf("wrong root: %v", err)
		}
	})
	t.Run("a nomtstore directory with other state", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := migrateTo(t, c, c.latest-1, dir, migrate.Options{SkipVerify: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := migrateTo(t, c, c.latest, dir, migrate.Options{}); !errors.Is(err, migrate.ErrNotEmpty) {
			t.Errorf("migrating into a store at another height: %v", err)
		}
		if v := engineVersion(t, dir); v != uint64(c.latest-1) {
			t.Errorf("the refused migration changed the store: version %d", v)
		}
	})
}

func copyDB(t *testing.T, from, to dbm.DB) {
	t.Helper()
	it, err := from.Iterator(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = it.Close() }()
	for ; it.Valid(); it.Next() {
		if err := to.Set(it.Key(), it.Value()); err != nil {
			t.Fatal(err)
		}
	}
}

// A second run after a committed migration only verifies it.
func TestFromIAVLRerun(t *testing.T) {
	c := newIAVLChain(t, 4, 200)
	dir := t.TempDir()
	if _, err := migrateTo(t, c, 0, dir, migrate.Options{SkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	res, err := migrateTo(t, c, 0, dir, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.VerifyTime == 0 || res.Keys != c.keys(c.latest) {
		t.Fatalf("rerun: %+v", res)
	}
}

// An interrupted migration (cancelled, or a full disk) leaves nomtstore
// empty and IAVL untouched; the next run completes.
func TestFromIAVLInterrupted(t *testing.T) {
	c := newIAVLChain(t, 6, 3000)
	before := digest(t, c.db)
	dir := t.TempDir()

	ctx, cancel := context.WithCancel(context.Background())
	src, err := migrate.OpenSource(c.db, 0, multistore.DecodeCommitInfo)
	if err != nil {
		t.Fatal(err)
	}
	_, err = migrate.FromIAVL(ctx, src, dir, migrate.Options{ProgressEvery: 1, Progress: func(p migrate.Progress) {
		if p.Phase == "copy" && p.Keys > 0 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled migration: %v", err)
	}
	if v := engineVersion(t, dir); v != 0 {
		t.Fatalf("a cancelled migration left version %d", v)
	}

	ffs := vfs.NewFaultFS(vfs.Default)
	ffs.Inject(vfs.Fault{Op: vfs.OpWrite, Skip: 5, Err: syscall.ENOSPC, Sticky: true})
	_, err = migrateTo(t, c, 0, dir, migrate.Options{Engine: commitment.Options{FS: ffs}})
	if !errors.Is(err, syscall.ENOSPC) || ffs.Hits() == 0 {
		t.Fatalf("migration on a full disk: %v (%d faults)", err, ffs.Hits())
	}
	if v := engineVersion(t, dir); v != 0 {
		t.Fatalf("a migration failing on a full disk left version %d", v)
	}
	if digest(t, c.db) != before {
		t.Fatal("the migration changed the IAVL database")
	}
	res, err := migrateTo(t, c, 0, dir, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.AppHash) != string(c.hashes[c.latest]) || res.Keys != c.keys(c.latest) {
		t.Fatalf("retried migration: %+v", res)
	}
}

// State sync across the switch: a migrated node's snapshot of a height
// after the switch restores on a new node to the same app hash; an IAVL
// node's snapshot restores to nomtstore's app hash, never the IAVL one
// the chain recorded, and the restore says so (CometBFT's app-hash check
// then refuses it).
func TestStateSyncAcrossTheSwitch(t *testing.T) {
	c := newIAVLChain(t, 5, 200)
	dir := filepath.Join(t.TempDir(), "nomtstore")
	if _, err := migrateTo(t, c, 0, dir, migrate.Options{}); err != nil {
		t.Fatal(err)
	}
	src := openMultistore(t, dir, c.db)
	for i := range 3 {
		src.GetKVStore(src.StoreKeysByName()["bank"]).Set(fmt.Appendf(nil, "after-%d", i), []byte("switch"))
		src.Commit()
	}
	height := c.latest + 2
	info, err := src.GetCommitInfo(height)
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	if err := src.Snapshot(uint64(height), protoio.NewDelimitedWriter(&stream)); err != nil {
		t.Fatal(err)
	}
	dst := openMultistore(t, filepath.Join(t.TempDir(), "nomtstore"), nil)
	if _, err := dst.Restore(uint64(height), snapshottypes.CurrentFormat, protoio.NewDelimitedReader(&stream, 64<<20)); err != nil {
		t.Fatal(err)
	}
	if got := dst.LastCommitID(); got.Version != height || !bytes.Equal(got.Hash, info.Hash()) {
		t.Fatalf("restored from a migrated node: %d %X, want %d %X", got.Version, got.Hash, height, info.Hash())
	}

	// An IAVL node's snapshot of the last IAVL height.
	rs, _ := iavltest.NewRootMulti(t, c.db, append(slices.Clone(storeNames), emptyStore)...)
	stream.Reset()
	if err := rs.Snapshot(uint64(c.latest), protoio.NewDelimitedWriter(&stream)); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	fromIAVL, err := multistore.New(filepath.Join(t.TempDir(), "nomtstore"), log.NewLogger(&logged), multistore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fromIAVL.Close() }()
	for _, name := range append(slices.Clone(storeNames), emptyStore) {
		fromIAVL.MountStoreWithDB(types.NewKVStoreKey(name), types.StoreTypeIAVL, nil)
	}
	if err := fromIAVL.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	if _, err := fromIAVL.Restore(uint64(c.latest), snapshottypes.CurrentFormat, protoio.NewDelimitedReader(&stream, 64<<20)); err != nil {
		t.Fatal(err)
	}
	if got := fromIAVL.LastCommitID(); bytes.Equal(got.Hash, c.hashes[c.latest]) {
		t.Fatal("an IAVL snapshot restored to IAVL's app hash")
	}
	if !strings.Contains(logged.String(), "taken by a node on IAVL") {
		t.Fatalf("the restore of an IAVL node's snapshot did not say so; log:\n%s", logged.String())
	}
}
