package keeper

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nomtstore/nomtstore/cms"
	"github.com/nomtstore/nomtstore/commitment"
	nomtstorev1 "github.com/nomtstore/nomtstore/proto/nomtstore/v1"
)

// Store is what the query server reads: either SDK line's multistore.
type Store interface {
	// Core is the SDK-free store under the line's adapter.
	Core() *cms.Store
	// PruningSettings are the SDK pruning options in force.
	PruningSettings() Pruning
	// AppHash is the app hash of a commit info (the SDK's hash of it).
	AppHash(info cms.CommitInfo) []byte
}

// Pruning are the SDK pruning options, as app.toml names the strategy
// ("default", "everything", "nothing", "custom").
type Pruning struct {
	Strategy             string
	KeepRecent, Interval uint64
}

// QueryServer answers nomtstore.v1.Query from a store.
type QueryServer struct {
	store Store
}

var _ nomtstorev1.QueryServer = QueryServer{}

// NewQueryServer returns the query server over store.
func NewQueryServer(store Store) QueryServer { return QueryServer{store: store} }

// Status reports versions, pruning, the page table, disk use and the WAL.
func (q QueryServer) Status(context.Context, *nomtstorev1.QueryStatusRequest) (*nomtstorev1.QueryStatusResponse, error) {
	core := q.store.Core()
	engine := core.Engine()
	st := engine.Stats()
	opts := q.store.PruningSettings()
	ps := core.PruningStats()
	res := &nomtstorev1.QueryStatusResponse{
		LatestVersion:   st.Version,
		EarliestVersion: st.EarliestVersion,
		Pruning: nomtstorev1.PruningOptions{
			Strategy:         opts.Strategy,
			KeepRecent:       opts.KeepRecent,
			Interval:         opts.Interval,
			SnapshotInterval: core.SnapshotInterval(),
		},
		LastPruning: nomtstorev1.PruningState{
			RequestedTo:         ps.Requested,
			PendingVersions:     ps.Pending,
			Runs:                ps.Runs,
			Failures:            ps.Failures,
			ConsecutiveFailures: ps.ConsecutiveFailures,
			LastRunDurationMs:   uint64(ps.LastDuration.Milliseconds()),
			PrunedVersions:      st.PrunedVersions,
		},
		Table: nomtstorev1.TableStatus{
			Buckets:      st.Table.Buckets,
			Full:         st.Table.Full,
			Tombstones:   st.Table.Tombstones,
			LoadFactor:   strconv.FormatFloat(st.Table.LoadFactor, 'f', 4, 64),
			MeanProbe:    strconv.FormatFloat(st.Table.MeanProbe, 'f', 3, 64),
			LongestProbe: uint64(st.Table.LongestProbe),
			FileBytes:    uint64(st.Table.FileBytes),
			Generation:   st.Table.Generation,
			DirtyPages:   uint64(st.DirtyPages),
			ElideBelow:   uint64(st.ElideBelow),
		},
		Wal:             nomtstorev1.WALStatus{Records: st.WALRecords, Bytes: st.WALRecordBytes},
		Commits:         st.Commits,
		PagesWritten:    st.PagesWritten,
		WalBytesWritten: st.WALBytes,
	}
	if !ps.LastRun.IsZero() {
		res.LastPruning.LastRunUnixMs = ps.LastRun.UnixMilli()
	}
	if ps.LastError != nil {
		res.LastPruning.LastError = ps.LastError.Error()
	}
	disk, err := DiskUsage(core.Dir())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	res.Disk = disk
	return res, nil
}

// DiskUsage is the allocated size of each part of the store in dir (the
// page table; the WAL log; Pebble's values and history): what
// Status reports of a running node and `nomtstore stats` of a stopped one.
func DiskUsage(dir string) ([]nomtstorev1.DiskUsage, error) {
	var disk []nomtstorev1.DiskUsage
	components := []struct{ name, path string }{
		{"page table", filepath.Join(dir, "pages.ht")},
		{"write-ahead log", filepath.Join(dir, "wal")},
		{"values and history", filepath.Join(dir, "pebble")},
	}
	for _, c := range components {
		usage, err := diskUsage(c.path)
		if err != nil {
			return nil, fmt.Errorf("disk use of the %s: %w", c.name, err)
		}
		disk = append(disk, nomtstorev1.DiskUsage{Component: c.name, Bytes: usage.bytes})
	}
	return disk, nil
}

type usage struct{ files, bytes uint64 }

// diskUsage sums the allocated bytes of a file or of a directory's files.
// Files may come and go while it walks (WALs, Pebble compactions).
func diskUsage(path string) (usage, error) {
	var u usage
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		u.files++
		if sys, ok := info.Sys().(*syscall.Stat_t); ok {
			u.bytes += uint64(sys.Blocks) * 512
		} else {
			u.bytes += uint64(info.Size())
		}
		return nil
	})
	return u, err
}

// resolveHeight maps 0 to the latest version and refuses heights the store
// does not hold, with gRPC codes a client can act on.
func (q QueryServer) resolveHeight(height int64) (int64, error) {
	if height < 0 {
		return 0, status.Errorf(codes.InvalidArgument, "height %d is negative", height)
	}
	if height == 0 {
		height = q.store.Core().LatestVersion()
		if height == 0 {
			return 0, status.Error(codes.FailedPrecondition, "nothing is committed yet")
		}
	}
	if _, err := q.store.Core().Engine().RootsAt(uint64(height)); err != nil {
		return 0, versionError(height, err)
	}
	return height, nil
}

// commitInfoAt resolves a requested height and reads its commit info.
func (q QueryServer) commitInfoAt(requested int64) (int64, *cms.CommitInfo, error) {
	height, err := q.resolveHeight(requested)
	if err != nil {
		return 0, nil, err
	}
	info, err := q.store.Core().GetCommitInfo(height)
	if err != nil {
		return 0, nil, versionError(height, err)
	}
	return height, info, nil
}

func versionError(height int64, err error) error {
	switch {
	case errors.Is(err, commitment.ErrVersionPruned):
		return status.Errorf(codes.NotFound, "height %d is pruned: %v", height, err)
	case errors.Is(err, commitment.ErrVersionFuture):
		return status.Errorf(codes.InvalidArgument, "height %d is not committed yet: %v", height, err)
	}
	return status.Errorf(codes.Internal, "height %d: %v", height, err)
}

// Roots returns each store's root at a height and the app hash they make.
func (q QueryServer) Roots(_ context.Context, req *nomtstorev1.QueryRootsRequest) (*nomtstorev1.QueryRootsResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "empty request")
	}
	height, info, err := q.commitInfoAt(req.Height)
	if err != nil {
		return nil, err
	}
	res := &nomtstorev1.QueryRootsResponse{Height: height, AppHash: q.store.AppHash(*info)}
	for _, si := range info.Stores {
		res.Roots = append(res.Roots, nomtstorev1.StoreRoot{Name: si.Name, Root: si.CommitID.Hash})
	}
	return res, nil
}

// KeyCounts counts each store's keys at a height.
func (q QueryServer) KeyCounts(ctx context.Context, req *nomtstorev1.QueryKeyCountsRequest) (*nomtstorev1.QueryKeyCountsResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "empty request")
	}
	height, info, err := q.commitInfoAt(req.Height)
	if err != nil {
		return nil, err
	}
	res := &nomtstorev1.QueryKeyCountsResponse{Height: height}
	trees := map[string]bool{}
	engine := q.store.Core().Engine()
	for _, name := range engine.Trees() {
		trees[name] = true
	}
	for _, si := range info.Stores {
		if !trees[si.Name] {
			continue // a DB-type store: not in the engine
		}
		n, err := countKeys(ctx, engine, si.Name, uint64(height))
		if err != nil {
			return nil, err
		}
		res.Counts = append(res.Counts, nomtstorev1.StoreKeyCount{Name: si.Name, Keys: n})
	}
	return res, nil
}

func countKeys(ctx context.Context, engine *commitment.DB, name string, height uint64) (uint64, error) {
	it, err := engine.NewIteratorAt(name, nil, nil, false, height)
	if err != nil {
		return 0, versionError(int64(height), err)
	}
	defer func() { _ = it.Close() }()
	var n uint64
	for ; it.Valid(); it.Next() {
		n++
		if n%4096 == 0 && ctx.Err() != nil {
			return 0, status.FromContextError(ctx.Err()).Err()
		}
	}
	if err := it.Error(); err != nil {
		return 0, status.Errorf(codes.Internal, "counting %s: %v", name, err)
	}
	return n, nil
}
