package multistore

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"cosmossdk.io/log/v2"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	dbm "github.com/cosmos/cosmos-db"
	"github.com/cosmos/cosmos-sdk/store/v2/rootmulti"
	snapshottypes "github.com/cosmos/cosmos-sdk/store/v2/snapshots/types"
	"github.com/cosmos/cosmos-sdk/store/v2/types"
	protoio "github.com/cosmos/gogoproto/io"
)

// The helpers below run the same calls against rootmulti.Store (the
// reference, over a MemDB with the default IAVL settings) and against our
// Store, and compare what comes back. Store keys are shared by both sides:
// a key is only a map key to either store.

// mount is one store mounted on both sides.
type mount struct {
	key types.StoreKey
	typ types.StoreType
	// ownDB gives a DB-type store a database of its own, one per side.
	ownDB          bool
	refDB, oursDB  dbm.DB
	skipOnReopened bool // not mounted again by reopen
}

func iavlMount(name string) *mount {
	return &mount{key: types.NewKVStoreKey(name), typ: types.StoreTypeIAVL}
}

// twin is a rootmulti.Store and our Store with the same stores mounted.
type twin struct {
	t      *testing.T
	refDB  dbm.DB
	ref    *rootmulti.Store
	dir    string
	ours   *Store
	mounts []*mount
	// beforeLoad, if set, runs on each side after mounting and before the
	// version is loaded (options baseapp sets at construction).
	beforeLoad func(s multi)
}

func newRef(db dbm.DB) *rootmulti.Store {
	return rootmulti.NewStore(db, log.NewNopLogger())
}

func openOurs(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := New(dir, log.NewNopLogger(), Options{})
	if err != nil {
		t.Fatalf("New(%s): %v", dir, err)
	}
	return s
}

// tempOurs opens our store in a temporary directory, closed at the end of
// the test.
func tempOurs(t testing.TB) *Store {
	t.Helper()
	s := openOurs(t, t.TempDir())
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing our store: %v", err)
		}
	})
	return s
}

// newTwin creates both stores and mounts the stores on them; it does not
// load a version.
func newTwin(t *testing.T, mounts ...*mount) *twin {
	t.Helper()
	tw := &twin{t: t, refDB: dbm.NewMemDB(), dir: t.TempDir(), mounts: mounts}
	for _, m := range mounts {
		if m.ownDB {
			m.refDB, m.oursDB = dbm.NewMemDB(), dbm.NewMemDB()
		}
	}
	tw.ref = newRef(tw.refDB)
	tw.ours = openOurs(t, tw.dir)
	t.Cleanup(func() {
		if tw.ours != nil {
			if err := tw.ours.Close(); err != nil {
				t.Errorf("closing our store: %v", err)
			}
		}
	})
	tw.mountAll()
	return tw
}

func (tw *twin) mountAll() {
	for _, m := range tw.mounts {
		if m.skipOnReopened {
			continue
		}
		tw.ref.MountStoreWithDB(m.key, m.typ, m.refDB)
		tw.ours.MountStoreWithDB(m.key, m.typ, m.oursDB)
	}
	if tw.beforeLoad != nil {
		tw.beforeLoad(tw.ref)
		tw.beforeLoad(tw.ours)
	}
}

// loadedTwin is newTwin then LoadLatestVersion on both.
func loadedTwin(t *testing.T, mounts ...*mount) *twin {
	t.Helper()
	tw := newTwin(t, mounts...)
	tw.load()
	return tw
}

func (tw *twin) load() {
	tw.t.Helper()
	tw.each(func(side string, s multi) {
		if err := s.LoadLatestVersion(); err != nil {
			tw.t.Fatalf("%s: LoadLatestVersion: %v", side, err)
		}
	})
}

// reopen closes our store and opens it again from its directory, makes a
// new rootmulti.Store over the same database, mounts the stores again
// (those not marked skipOnReopened) and does not load.
func (tw *twin) reopen() {
	tw.t.Helper()
	if err := tw.ours.Close(); err != nil {
		tw.t.Fatalf("closing our store: %v", err)
	}
	tw.ours = nil
	tw.ref = newRef(tw.refDB)
	tw.ours = openOurs(tw.t, tw.dir)
	tw.mountAll()
}

// multi is what both stores offer: the interface, queries, and the
// commit infos and header baseapp uses on rootmulti.
type multi interface {
	types.CommitMultiStore
	types.Queryable
	GetCommitInfo(int64) (*types.CommitInfo, error)
	SetCommitHeader(cmtproto.Header)
}

var (
	_ multi = (*rootmulti.Store)(nil)
	_ multi = (*Store)(nil)
)

type side struct {
	name string
	s    multi
}

func (tw *twin) sides() []side {
	return []side{{"rootmulti", tw.ref}, {"ours", tw.ours}}
}

func (tw *twin) each(fn func(side string, s multi)) {
	for _, sd := range tw.sides() {
		fn(sd.name, sd.s)
	}
}

// set writes the same pairs through GetKVStore on both sides.
func (tw *twin) set(key types.StoreKey, kvs ...string) {
	tw.t.Helper()
	if len(kvs)%2 != 0 {
		tw.t.Fatal("set: odd number of arguments")
	}
	tw.each(func(_ string, s multi) {
		kv := s.GetKVStore(key)
		for i := 0; i < len(kvs); i += 2 {
			kv.Set([]byte(kvs[i]), []byte(kvs[i+1]))
		}
	})
}

func (tw *twin) del(key types.StoreKey, keys ...string) {
	tw.each(func(_ string, s multi) {
		for _, k := range keys {
			s.GetKVStore(key).Delete([]byte(k))
		}
	})
}

// commit commits both and checks they agree on the version.
func (tw *twin) commit() (ref, ours types.CommitID) {
	tw.t.Helper()
	ref, ours = tw.ref.Commit(), tw.ours.Commit()
	if ref.Version != ours.Version {
		tw.t.Fatalf("commit: rootmulti at version %d, ours at %d", ref.Version, ours.Version)
	}
	return ref, ours
}

// pair is one entry read back; present distinguishes an absent key (Get
// returning nil) from an empty value.
type pair struct {
	Key, Value string
}

func (p pair) String() string { return fmt.Sprintf("%x=%x", p.Key, p.Value) }

// readRange reads [start, end) through an iterator of kv.
func readRange(kv types.KVStore, start, end []byte, reverse bool) []pair {
	var it types.Iterator
	if reverse {
		it = kv.ReverseIterator(start, end)
	} else {
		it = kv.Iterator(start, end)
	}
	var out []pair
	for ; it.Valid(); it.Next() {
		if err := it.Error(); err != nil {
			panic(err)
		}
		out = append(out, pair{string(it.Key()), string(it.Value())})
	}
	// (cachekv's iterators report an error once invalid: Error is only
	// meaningful while valid.)
	if err := it.Close(); err != nil {
		panic(err)
	}
	return out
}

func fmtPairs(ps []pair) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p.String())
	}
	return "[" + b.String() + "]"
}

// iterRange is an iterator domain; nil bounds are open.
type iterRange struct{ start, end []byte }

var commonRanges = []iterRange{
	{nil, nil},
	{[]byte("b"), nil},
	{nil, []byte("c")},
	{[]byte("a"), []byte("c")},
	{[]byte("b"), []byte("b\x00")},
	{[]byte{0x00}, []byte{0xff}},
	{[]byte{0xff}, nil},
	{[]byte("zz"), []byte("zzz")},
}

// compareKV reads keys and ranges from both KV stores and fails on the
// first difference: Get (nil-ness included), Has, and iterators forward
// and reverse.
func compareKV(t testing.TB, what string, ref, ours types.KVStore, keys [][]byte, ranges []iterRange) {
	t.Helper()
	for _, k := range keys {
		rv, ov := ref.Get(k), ours.Get(k)
		if (rv == nil) != (ov == nil) || !bytes.Equal(rv, ov) {
			t.Fatalf("%s: Get(%x): rootmulti %x (nil %v), ours %x (nil %v)", what, k, rv, rv == nil, ov, ov == nil)
		}
		if rh, oh := ref.Has(k), ours.Has(k); rh != oh {
			t.Fatalf("%s: Has(%x): rootmulti %v, ours %v", what, k, rh, oh)
		}
	}
	for _, r := range ranges {
		for _, reverse := range []bool{false, true} {
			rp, op := readRange(ref, r.start, r.end, reverse), readRange(ours, r.start, r.end, reverse)
			if fmtPairs(rp) != fmtPairs(op) {
				t.Fatalf("%s: iterator [%x, %x) reverse=%v:\nrootmulti %s\nours      %s", what, r.start, r.end, reverse, fmtPairs(rp), fmtPairs(op))
			}
		}
	}
}

// keysOf lists the keys as byte slices.
func keysOf(ks ...string) [][]byte {
	out := make([][]byte, len(ks))
	for i, k := range ks {
		out[i] = []byte(k)
	}
	return out
}

// storeNames lists the names in a commit info, in order, with versions.
func storeNames(ci *types.CommitInfo) []string {
	var out []string
	for _, si := range ci.StoreInfos {
		out = append(out, fmt.Sprintf("%s@%d", si.Name, si.CommitId.Version))
	}
	return out
}

// recovered runs fn and returns what it panicked with, as a string ("" if
// it did not panic).
func recovered(fn func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
			if msg == "" {
				msg = "<empty panic>"
			}
		}
	}()
	fn()
	return ""
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// takeSnapshot writes a snapshot of height into a byte stream.
func takeSnapshot(t testing.TB, s snapshottypes.Snapshotter, height uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Snapshot(height, protoio.NewDelimitedWriter(&buf)); err != nil {
		t.Fatalf("Snapshot(%d): %v", height, err)
	}
	return buf.Bytes()
}

func restoreSnapshot(s snapshottypes.Snapshotter, height uint64, stream []byte) (snapshottypes.SnapshotItem, error) {
	return s.Restore(height, snapshottypes.CurrentFormat, protoio.NewDelimitedReader(bytes.NewReader(stream), 64<<20))
}

// snapshotItems decodes a snapshot stream: the stores, and the number of
// leaves and of IAVL inner nodes per store.
func snapshotItems(t testing.TB, stream []byte) (stores []string, leaves, inner map[string]int) {
	t.Helper()
	leaves, inner = map[string]int{}, map[string]int{}
	r := protoio.NewDelimitedReader(bytes.NewReader(stream), 64<<20)
	current := ""
	for {
		var item snapshottypes.SnapshotItem
		if err := r.ReadMsg(&item); err != nil {
			break
		}
		switch it := item.Item.(type) {
		case *snapshottypes.SnapshotItem_Store:
			current = it.Store.Name
			stores = append(stores, current)
		case *snapshottypes.SnapshotItem_IAVL:
			if it.IAVL.Height == 0 {
				leaves[current]++
			} else {
				inner[current]++
			}
		}
	}
	return stores, leaves, inner
}

// extensionItem is the stream of an extension's snapshot: its item and
// one payload.
func extensionItem(t testing.TB, name string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := protoio.NewDelimitedWriter(&buf)
	for _, item := range []*snapshottypes.SnapshotItem{
		{Item: &snapshottypes.SnapshotItem_Extension{Extension: &snapshottypes.SnapshotExtensionMeta{Name: name, Format: 1}}},
		{Item: &snapshottypes.SnapshotItem_ExtensionPayload{ExtensionPayload: &snapshottypes.SnapshotExtensionPayload{Payload: []byte("payload")}}},
	} {
		if err := w.WriteMsg(item); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}
