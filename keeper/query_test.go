package keeper_test

import (
	"context"
	"testing"

	"cosmossdk.io/log"
	"cosmossdk.io/store/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nomtstore/nomtstore/keeper"
	"github.com/nomtstore/nomtstore/multistore"
	nomtstorev1 "github.com/nomtstore/nomtstore/proto/nomtstore/v1"
)

// TestQueryErrors: heights a client gets wrong are refused with codes it
// can act on, before and after the first commit.
func TestQueryErrors(t *testing.T) {
	s, err := multistore.New(t.TempDir(), log.NewNopLogger(), multistore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	bank := types.NewKVStoreKey("bank")
	s.MountStoreWithDB(bank, types.StoreTypeIAVL, nil)
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	q := keeper.NewQueryServer(s)
	ctx := context.Background()
	if _, err := q.Roots(ctx, &nomtstorev1.QueryRootsRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("roots before any commit: %v", err)
	}
	for i := range 3 {
		s.GetKVStore(bank).Set([]byte{byte(i)}, []byte("v"))
		s.Commit()
	}
	tests := []struct {
		height int64
		code   codes.Code
	}{
		{-1, codes.InvalidArgument},
		{4, codes.InvalidArgument},
		{0, codes.OK},
		{2, codes.OK},
	}
	for _, tc := range tests {
		_, err := q.Roots(ctx, &nomtstorev1.QueryRootsRequest{Height: tc.height})
		if status.Code(err) != tc.code {
			t.Errorf("roots at %d: %v, want %v", tc.height, err, tc.code)
		}
		counts, err := q.KeyCounts(ctx, &nomtstorev1.QueryKeyCountsRequest{Height: tc.height})
		if status.Code(err) != tc.code {
			t.Errorf("key counts at %d: %v, want %v", tc.height, err, tc.code)
		}
		if tc.height == 2 && (len(counts.GetCounts()) != 1 || counts.Counts[0].Keys != 2) {
			t.Errorf("key counts at 2: %+v", counts)
		}
	}
	if _, err := q.Roots(ctx, nil); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("nil request: %v", err)
	}
	st, err := q.Status(ctx, &nomtstorev1.QueryStatusRequest{})
	if err != nil || st.LatestVersion != 3 || st.EarliestVersion != 1 || st.Pruning.Strategy != "undefined" && st.Pruning.Strategy != "nothing" {
		t.Fatalf("status: %+v, %v", st, err)
	}
}
