package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	pruningtypes "cosmossdk.io/store/pruning/types"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cosmos/cosmos-sdk/testutil/network"

	nomtstorev1 "github.com/nomtstore/nomtstore/proto/nomtstore/v1"
)

// TestNetworkQueryService: the nomtstore.v1.Query service on a running
// in-process network answers over gRPC and REST with the store's own
// figures: versions (the earliest moves as pruning runs), pruning options
// and worker record, page table, disk use, roots that hash to the header's
// app hash, and key counts equal to a walk of each store.
func TestNetworkQueryService(t *testing.T) {
	cfg, apps := networkConfig(t, 1)
	cfg.PruningStrategy = pruningtypes.PruningOptionEverything // keep 2, every 10
	net, err := network.New(t, t.TempDir(), cfg)
	require.NoError(t, err)
	defer net.Cleanup()
	val := net.Validators[0]
	store := apps.store(t, val)
	query := nomtstorev1.NewQueryClient(val.ClientCtx)
	ctx := context.Background()

	waitHeight(t, val, 4)
	st, err := query.Status(ctx, &nomtstorev1.QueryStatusRequest{})
	require.NoError(t, err)
	latest := uint64(store.LatestVersion())
	require.True(t, st.LatestVersion >= 3 && st.LatestVersion <= latest, "status latest %d, store %d", st.LatestVersion, latest)
	require.Equal(t, nomtstorev1.PruningOptions{Strategy: "everything", KeepRecent: 2, Interval: 10}, st.Pruning)
	table := store.Engine().Stats().Table
	require.Equal(t, table.Buckets, st.Table.Buckets)
	// A young chain's stores hold fewer keys than a stored page needs
	// (elision): their tries live in the leaf index, and the table may
	// hold no page yet.
	require.LessOrEqual(t, st.Table.Full, table.Full)
	require.Len(t, st.Disk, 3)
	for _, d := range st.Disk {
		if d.Component == "write-ahead log" {
			continue // empty right after a checkpoint
		}
		require.Positive(t, d.Bytes, "%s uses no disk", d.Component)
	}
	require.Positive(t, st.Commits)

	// Roots at a height are that height's commit info, and hash to the
	// app hash in the next header.
	roots, err := query.Roots(ctx, &nomtstorev1.QueryRootsRequest{Height: 3})
	require.NoError(t, err)
	info, err := store.GetCommitInfo(3)
	require.NoError(t, err)
	require.Len(t, roots.Roots, len(info.StoreInfos))
	for i, si := range info.StoreInfos {
		require.Equal(t, si.Name, roots.Roots[i].Name)
		require.Equal(t, si.CommitId.Hash, roots.Roots[i].Root)
	}
	require.Equal(t, appHashAfter(t, val, 3), roots.AppHash)

	// Key counts are a walk of every store at the height.
	counts, err := query.KeyCounts(ctx, &nomtstorev1.QueryKeyCountsRequest{Height: 3})
	require.NoError(t, err)
	ms, err := store.CacheMultiStoreWithVersion(3)
	require.NoError(t, err)
	keys := store.StoreKeysByName()
	require.NotEmpty(t, counts.Counts)
	for _, c := range counts.Counts {
		it := ms.GetKVStore(keys[c.Name]).Iterator(nil, nil)
		n := uint64(0)
		for ; it.Valid(); it.Next() {
			n++
		}
		require.NoError(t, it.Close())
		require.Equal(t, n, c.Keys, "keys of %s", c.Name)
	}

	// Pruning (everything: keep 2, every 10) moves the earliest version,
	// and the service reports it, the worker's record and the refusal of
	// a pruned height.
	waitHeight(t, val, 24)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err = query.Status(ctx, &nomtstorev1.QueryStatusRequest{})
		require.NoError(t, err)
		if st.EarliestVersion > 10 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Greater(t, st.EarliestVersion, uint64(10), "pruning did not move the earliest version")
	require.LessOrEqual(t, st.EarliestVersion, store.Engine().EarliestVersion())
	require.Positive(t, st.LastPruning.Runs)
	require.Positive(t, st.LastPruning.PrunedVersions)
	require.Empty(t, st.LastPruning.LastError)
	require.NotZero(t, st.LastPruning.LastRunUnixMs)
	_, err = query.Roots(ctx, &nomtstorev1.QueryRootsRequest{Height: 3})
	require.Equal(t, codes.NotFound, status.Code(err), "roots at a pruned height: %v", err)
	_, err = query.KeyCounts(ctx, &nomtstorev1.QueryKeyCountsRequest{Height: 1 << 40})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "key counts at a future height: %v", err)

	// REST, through the gRPC gateway.
	resp, err := http.Get(fmt.Sprintf("%s/nomtstore/v1/status", val.APIAddress))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var rest struct {
		LatestVersion   string `json:"latest_version"`
		EarliestVersion string `json:"earliest_version"`
		Pruning         struct {
			Strategy string `json:"strategy"`
		} `json:"pruning"`
	}
	require.NoError(t, json.Unmarshal(body, &rest), "%s", body)
	require.Equal(t, "everything", rest.Pruning.Strategy)
	require.NotEmpty(t, rest.LatestVersion)
	resp, err = http.Get(fmt.Sprintf("%s/nomtstore/v1/roots?height=%d", val.APIAddress, st.LatestVersion))
	require.NoError(t, err)
	body, err = io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.True(t, bytes.Contains(body, []byte(`"name":"bank"`)), "%s", body)
}
