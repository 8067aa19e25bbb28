package multistore

import (
	snapshottypes "cosmossdk.io/store/snapshots/types"
	protoio "github.com/cosmos/gogoproto/io"
)

// Snapshot writes the IAVL-type stores at height in the SDK's snapshot
// format (format 3): per store, by name, a SnapshotStoreItem then its
// key/value pairs in key order as SnapshotIAVLItem leaves (cms.Store's
// Snapshot says why there are no inner nodes).
func (s *Store) Snapshot(height uint64, protoWriter protoio.Writer) error {
	return errorToSDK(s.core.Snapshot(height, snapshotWriter{protoWriter}))
}

// snapshotWriter writes the core's items as the SDK's generated types.
type snapshotWriter struct{ w protoio.Writer }

func (w snapshotWriter) WriteStore(name string) error {
	return w.w.WriteMsg(&snapshottypes.SnapshotItem{
		Item: &snapshottypes.SnapshotItem_Store{Store: &snapshottypes.SnapshotStoreItem{Name: name}},
	})
}

func (w snapshotWriter) WriteLeaf(key, value []byte, version int64) error {
	return w.w.WriteMsg(&snapshottypes.SnapshotItem{
		Item: &snapshottypes.SnapshotItem_IAVL{IAVL: &snapshottypes.SnapshotIAVLItem{
			Key: key, Value: value, Version: version, Height: 0,
		}},
	})
}

// Restore rebuilds the IAVL-type stores at height from a snapshot stream
// (ours, or IAVL's: its inner nodes are skipped) into an empty store, in
// bounded memory (cms.Store's Restore), commits them as version height and
// loads it. It returns the first item that is not a store or a leaf (an
// extension's), as rootmulti does. On an error nothing is committed and
// the store is left empty, ready for a retry.
func (s *Store) Restore(height uint64, _ uint32, protoReader protoio.Reader) (snapshottypes.SnapshotItem, error) {
	var item snapshottypes.SnapshotItem
	err := s.core.Restore(height, protoReader, item.Unmarshal)
	if err != nil {
		return snapshottypes.SnapshotItem{}, errorToSDK(err)
	}
	return item, nil
}
