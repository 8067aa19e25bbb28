package cms

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// restoreItem is what a restore decodes each snapshot item into, in place
// of snapshottypes.SnapshotItem: the generated type allocates four objects
// per key (the oneof wrapper, the IAVL item, its key and value), which with
// the decoding was a tenth of a restore's CPU. restoreItem allocates
// nothing: a key and value are slices of the reader's buffer, valid until
// the next read. It decodes the two items a store's state is made of (a
// store's name, an IAVL item) as the generated code does — the last of the
// oneof's fields wins, unknown fields are skipped, a known field of the
// wrong wire type is an error — and keeps any other item raw, for the
// generated type to decode: an extension's items end the stores.
type restoreItem struct {
	kind restoreItemKind
	// storeName is a store item's name.
	storeName []byte
	// key, value and height are an IAVL item's; value is nil when absent.
	key, value []byte
	height     int32
	// raw is the whole item when kind is itemOther.
	raw []byte
}

type restoreItemKind uint8

const (
	itemNone  restoreItemKind = iota // no field of the oneof
	itemStore                        // SnapshotItem.store (field 1)
	itemIAVL                         // SnapshotItem.iavl (field 2)
	itemOther                        // an extension's item (fields 3 and 4)
)

// The SnapshotItem fields restoreItem decodes.
const (
	fieldItemStore = 1
	fieldItemIAVL  = 2
	fieldItemFirst = 1 // the oneof's fields are 1..4 in store v1.1.2
	fieldItemLast  = 4

	fieldStoreName = 1

	fieldItemExtension        = 3 // SnapshotExtensionMeta: name (1, string), format (2, uint32)
	fieldItemExtensionPayload = 4 // SnapshotExtensionPayload: payload (1, bytes)

	fieldIAVLKey     = 1
	fieldIAVLValue   = 2
	fieldIAVLVersion = 3
	fieldIAVLHeight  = 4
)

var (
	errItemWireType = errors.New("proto: wrong wire type")
	// errItemTag is a tag no snapshot encoder writes, which restoreItem
	// refuses where the generated code is lenient: a field number protobuf
	// forbids (0, or past 2^29-1; the generated code truncates it to 32
	// bits), or a group (deprecated; the generated code skips groups
	// without matching their field numbers).
	errItemTag = errors.New("proto: unsupported tag in a snapshot item")
)

// consumeTag reads a field's tag.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int, error) {
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0, 0, protowire.ParseError(n)
	}
	num, typ := protowire.DecodeTag(v)
	if !num.IsValid() || v>>3 > uint64(protowire.MaxValidNumber) || typ == protowire.StartGroupType || typ == protowire.EndGroupType {
		return 0, 0, 0, fmt.Errorf("%w: field %d, wire type %d", errItemTag, v>>3, typ)
	}
	return num, typ, n, nil
}

// Reset, String and ProtoMessage make restoreItem a message for the
// snapshot stream's reader, which calls Unmarshal.
func (m *restoreItem) Reset()         { *m = restoreItem{} }
func (m *restoreItem) String() string { return fmt.Sprintf("snapshot item of kind %d", m.kind) }
func (*restoreItem) ProtoMessage()    {}

// Unmarshal decodes one SnapshotItem.
func (m *restoreItem) Unmarshal(b []byte) error {
	*m = restoreItem{}
	for all := b; len(b) > 0; {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if num < fieldItemFirst || num > fieldItemLast {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("%w %d for SnapshotItem field %d", errItemWireType, typ, num)
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch num {
		case fieldItemStore:
			m.kind, m.key, m.value, m.height = itemStore, nil, nil, 0
			err = m.unmarshalStore(v)
		case fieldItemIAVL:
			m.kind, m.storeName = itemIAVL, nil
			err = m.unmarshalIAVL(v)
		default:
			m.kind, m.raw = itemOther, all
			err = checkExtensionItem(num, v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *restoreItem) unmarshalStore(b []byte) error {
	m.storeName = nil
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != fieldStoreName {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("%w %d for SnapshotStoreItem.name", errItemWireType, typ)
		}
		m.storeName = v
		return nil
	})
}

func (m *restoreItem) unmarshalIAVL(b []byte) error {
	m.key, m.value, m.height = nil, nil, 0
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		want := protowire.BytesType
		if num == fieldIAVLVersion || num == fieldIAVLHeight {
			want = protowire.VarintType
		}
		if num >= fieldIAVLKey && num <= fieldIAVLHeight && typ != want {
			return fmt.Errorf("%w %d for SnapshotIAVLItem field %d", errItemWireType, typ, num)
		}
		switch num {
		case fieldIAVLKey:
			m.key = nonNil(v)
		case fieldIAVLValue:
			m.value = nonNil(v)
		case fieldIAVLHeight:
			m.height = int32(x) //nolint:gosec // int32 fields are varints truncated to 32 bits, as the generated code reads them
		}
		return nil
	})
}

// checkExtensionItem rejects an extension item the generated code would:
// one that is not a well-formed message, or whose known fields have the
// wrong wire type. restoreItem keeps the item raw for the line.
func checkExtensionItem(num protowire.Number, b []byte) error {
	return eachField(b, func(field protowire.Number, typ protowire.Type, _ []byte, _ uint64) error {
		want, known := protowire.BytesType, field == 1
		if num == fieldItemExtension && field == 2 {
			want, known = protowire.VarintType, true
		}
		if known && typ != want {
			return fmt.Errorf("%w %d for SnapshotItem field %d's field %d", errItemWireType, typ, num, field)
		}
		return nil
	})
}

// nonNil is v, or an empty slice for an empty field: present, as the
// generated code makes it.
func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// eachField calls f with each field of a message: v for a length-delimited
// field, x for a varint; other wire types are skipped.
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
