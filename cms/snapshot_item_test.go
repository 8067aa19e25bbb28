package cms

import (
	"bytes"
	"math/rand/v2"
	"testing"

	snapshottypes "cosmossdk.io/store/snapshots/types"
	"google.golang.org/protobuf/encoding/protowire"
)

// sameDecoding checks that restoreItem reads b as the generated
// SnapshotItem does: both fail, or both succeed with the same item. Only
// on bytes no encoder writes (wellFormed false) may restoreItem refuse
// what the generated code accepts (it is stricter on varints, tags and
// groups); it never accepts what that refuses, nor reads an item otherwise.
func sameDecoding(t *testing.T, b []byte, wellFormed bool) {
	t.Helper()
	var want snapshottypes.SnapshotItem
	wantErr := want.Unmarshal(b)
	var got restoreItem
	gotErr := got.Unmarshal(b)
	if got.kind == itemOther && gotErr == nil {
		// The restore decodes these with the generated type.
		var other snapshottypes.SnapshotItem
		gotErr = other.Unmarshal(got.raw)
	}
	if wantErr == nil && gotErr != nil && !wellFormed {
		return
	}
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%x: generated code says %v, restoreItem %v", b, wantErr, gotErr)
	}
	if wantErr != nil {
		return
	}
	switch it := want.Item.(type) {
	case *snapshottypes.SnapshotItem_Store:
		if got.kind != itemStore || string(got.storeName) != it.Store.Name {
			t.Fatalf("%x: store %q, restoreItem kind %d name %q", b, it.Store.Name, got.kind, got.storeName)
		}
	case *snapshottypes.SnapshotItem_IAVL:
		n := it.IAVL
		if got.kind != itemIAVL || !bytes.Equal(got.key, n.Key) || (got.key == nil) != (n.Key == nil) ||
			!bytes.Equal(got.value, n.Value) || (got.value == nil) != (n.Value == nil) || got.height != n.Height {
			t.Fatalf("%x: IAVL item %+v, restoreItem kind %d key %x value %x height %d", b, n, got.kind, got.key, got.value, got.height)
		}
	case nil:
		if got.kind != itemNone {
			t.Fatalf("%x: no item, restoreItem kind %d", b, got.kind)
		}
	default:
		if got.kind != itemOther || !bytes.Equal(got.raw, b) {
			t.Fatalf("%x: item %T, restoreItem kind %d", b, it, got.kind)
		}
	}
}

// randomItem encodes a SnapshotItem of a random kind, sometimes with
// several oneof fields, repeated or unknown fields, or a field of the wrong
// wire type; with garbage, sometimes random bytes too.
func randomItem(rng *rand.Rand, garbage bool) []byte {
	randBytes := func(max int) []byte {
		b := make([]byte, rng.IntN(max+1))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var b []byte
	for range 1 + rng.IntN(3) {
		kinds := 7
		if garbage {
			kinds = 8
		}
		switch rng.IntN(kinds) {
		case 0:
			b = protowire.AppendTag(b, fieldItemStore, protowire.BytesType)
			var inner []byte
			inner = protowire.AppendTag(inner, fieldStoreName, protowire.BytesType)
			inner = protowire.AppendBytes(inner, randBytes(12))
			b = protowire.AppendBytes(b, inner)
		case 1, 2, 3:
			var inner []byte
			if rng.IntN(8) > 0 {
				inner = protowire.AppendTag(inner, fieldIAVLKey, protowire.BytesType)
				inner = protowire.AppendBytes(inner, randBytes(40))
			}
			if rng.IntN(8) > 0 {
				inner = protowire.AppendTag(inner, fieldIAVLValue, protowire.BytesType)
				inner = protowire.AppendBytes(inner, randBytes(60))
			}
			inner = protowire.AppendTag(inner, fieldIAVLVersion, protowire.VarintType)
			inner = protowire.AppendVarint(inner, rng.Uint64())
			if rng.IntN(2) == 0 {
				inner = protowire.AppendTag(inner, fieldIAVLHeight, protowire.VarintType)
				inner = protowire.AppendVarint(inner, []uint64{0, 1, 127, 128, 1 << 40, rng.Uint64()}[rng.IntN(6)])
			}
			if rng.IntN(6) == 0 {
				inner = protowire.AppendTag(inner, 9, protowire.Fixed32Type)
				inner = protowire.AppendFixed32(inner, rng.Uint32())
			}
			if rng.IntN(10) == 0 {
				inner = protowire.AppendTag(inner, fieldIAVLKey, protowire.VarintType) // wrong wire type
				inner = protowire.AppendVarint(inner, 1)
			}
			b = protowire.AppendTag(b, fieldItemIAVL, protowire.BytesType)
			b = protowire.AppendBytes(b, inner)
		case 4:
			b = protowire.AppendTag(b, protowire.Number(3+rng.IntN(4)), protowire.BytesType) // 5 and 6 are unknown
			b = protowire.AppendBytes(b, nil)
		case 5:
			b = protowire.AppendTag(b, protowire.Number(7+rng.IntN(100)), protowire.VarintType)
			b = protowire.AppendVarint(b, rng.Uint64())
		case 6:
			b = protowire.AppendTag(b, fieldItemIAVL, protowire.VarintType) // wrong wire type
			b = protowire.AppendVarint(b, 5)
		case 7:
			b = append(b, randBytes(6)...) // garbage
		}
	}
	return b
}

// TestRestoreItemDecodesAsGenerated compares restoreItem with the generated
// SnapshotItem on random items, valid and not, and on every item a real
// snapshot is made of.
func TestRestoreItemDecodesAsGenerated(t *testing.T) {
	for _, item := range []snapshottypes.SnapshotItem{
		{Item: &snapshottypes.SnapshotItem_Store{Store: &snapshottypes.SnapshotStoreItem{Name: "bank"}}},
		{Item: &snapshottypes.SnapshotItem_IAVL{IAVL: &snapshottypes.SnapshotIAVLItem{Key: []byte("k"), Value: []byte("v"), Version: 7}}},
		{Item: &snapshottypes.SnapshotItem_IAVL{IAVL: &snapshottypes.SnapshotIAVLItem{Key: []byte("k"), Value: []byte{}, Version: 7}}},
		{Item: &snapshottypes.SnapshotItem_IAVL{IAVL: &snapshottypes.SnapshotIAVLItem{Key: []byte("k"), Version: 7, Height: 3}}},
		{Item: &snapshottypes.SnapshotItem_Extension{Extension: &snapshottypes.SnapshotExtensionMeta{Name: "wasm", Format: 1}}},
		{Item: &snapshottypes.SnapshotItem_ExtensionPayload{ExtensionPayload: &snapshottypes.SnapshotExtensionPayload{Payload: []byte("p")}}},
		{},
	} {
		b, err := item.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		sameDecoding(t, b, true)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		sameDecoding(t, randomItem(rng, false), true)
		sameDecoding(t, randomItem(rng, true), false)
	}
}

// FuzzRestoreItem checks restoreItem against the generated code on any
// bytes (make test fuzzes it for seconds, make test-long for ten minutes).
func FuzzRestoreItem(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 64 {
		f.Add(randomItem(rng, true))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sameDecoding(t, b, false)
	})
}
