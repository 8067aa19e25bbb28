package multistore

import (
	"bytes"
	"fmt"
	"testing"

	"cosmossdk.io/store/types"
)

// TestIteratorSlicesStayValid: the keys and values an iterator returned stay
// as they were after it moves on, as with rootmulti (IAVL) and cosmos-db.
// The SDK relies on it: cachekv indexes its cache by unsafe strings of the
// key slices Get is given, so a Get with a key an iterator returned, then a
// move of the iterator, used to corrupt the cache (found by the SDK
// simulation on the ibc-go simapp: authz's BeginBlock).
func TestIteratorSlicesStayValid(t *testing.T) {
	m := iavlMount("s")
	tw := loadedTwin(t, m)
	var kvs []string
	for i := range 300 {
		kvs = append(kvs, fmt.Sprintf("key-%04d", i), fmt.Sprintf("value-%04d", i))
	}
	tw.set(m.key, kvs...)
	tw.commit()
	// Version 2 changes every value, so version 1 reads superseded ones.
	want1 := append([]string(nil), kvs...)
	for i := 1; i < len(kvs); i += 2 {
		kvs[i] = fmt.Sprintf("value2-%04d", i/2)
	}
	tw.set(m.key, kvs...)
	tw.commit()
	// A pending write, merged by the overlay.
	tw.set(m.key, "key-0150x", "pending")
	want := append([]string(nil), kvs[:302]...)
	want = append(want, "key-0150x", "pending")
	want = append(want, kvs[302:]...)

	check := func(what string, kv types.KVStore, want []string) {
		t.Helper()
		var keys, values [][]byte
		it := kv.Iterator(nil, nil)
		for ; it.Valid(); it.Next() {
			keys, values = append(keys, it.Key()), append(values, it.Value())
		}
		_ = it.Close()
		if len(keys) != len(want)/2 {
			t.Fatalf("%s: %d keys, want %d", what, len(keys), len(want)/2)
		}
		for i := range keys {
			if string(keys[i]) != want[2*i] || string(values[i]) != want[2*i+1] {
				t.Fatalf("%s: entry %d read %q=%q after the iteration, want %q=%q", what, i, keys[i], values[i], want[2*i], want[2*i+1])
			}
		}
		// The cachekv case: Get with the iterator's key slices, then
		// Get every key afresh.
		cache := kv.(types.CacheWrapper).CacheWrap().(types.KVStore)
		it = cache.Iterator(nil, nil)
		for ; it.Valid(); it.Next() {
			_ = cache.Get(it.Key())
		}
		_ = it.Close()
		for i := 0; i < len(want); i += 2 {
			if got := cache.Get([]byte(want[i])); !bytes.Equal(got, []byte(want[i+1])) {
				t.Fatalf("%s: through a cache, Get(%q) = %q, want %q", what, want[i], got, want[i+1])
			}
		}
	}
	tw.each(func(side string, s multi) {
		check(side+" latest", s.GetKVStore(m.key), want)
		past, err := s.CacheMultiStoreWithVersion(1)
		if err != nil {
			t.Fatal(err)
		}
		check(side+" version 1", past.GetKVStore(m.key), want1)
	})
}
