package migrate_test

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"cosmossdk.io/log"
	"cosmossdk.io/store/metrics"
	"cosmossdk.io/store/rootmulti"
	"cosmossdk.io/store/types"
	dbm "github.com/cosmos/cosmos-db"

	"github.com/nomtstore/nomtstore/internal/procstat"
	"github.com/nomtstore/nomtstore/migrate"
)

// BenchmarkFromIAVL migrates an IAVL application database of
// NOMTSTORE_MIGRATE_KEYS keys (default 100k; 70% in "bank", 30% in "acc",
// 32-byte keys and 40-byte values, preloaded in commits of 100k keys as
// the harness preloads IAVL) at its latest height, verification included,
// and reports keys/s, the split between reading IAVL, building nomtstore
// and verifying, and the peak RSS of the migration.
// NOMTSTORE_MIGRATE_SOURCE names a directory to keep the source in (it is
// reused if it holds one), to measure 10M keys without rebuilding it.
func BenchmarkFromIAVL(b *testing.B) {
	keys := 100_000
	if v := os.Getenv("NOMTSTORE_MIGRATE_KEYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		keys = n
	}
	dir := os.Getenv("NOMTSTORE_MIGRATE_SOURCE")
	if dir == "" {
		dir = b.TempDir()
	}
	db, err := dbm.NewDB("application", dbm.GoLevelDBBackend, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if latest, err := migrate.IAVLLatestHeight(db); err != nil {
		b.Fatal(err)
	} else if latest == 0 {
		preloadIAVL(b, db, keys)
	}
	var res *migrate.Result
	var peak int64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		target := filepath.Join(b.TempDir(), "nomtstore")
		if err := procstat.ResetPeakRSS(); err != nil {
			b.Fatal(err)
		}
		src, err := migrate.OpenSource(db, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err = migrate.FromIAVL(context.Background(), src, target, migrate.Options{})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if peak, err = procstat.PeakRSS(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	total := res.CopyTime + res.BuildTime + res.VerifyTime
	b.ReportMetric(float64(res.Keys)/total.Seconds(), "keys/s")
	b.ReportMetric(res.CopyTime.Seconds(), "copy-s")
	b.ReportMetric(res.ReadTime.Seconds(), "iavl-read-s")
	b.ReportMetric(res.BuildTime.Seconds(), "build-s")
	b.ReportMetric(res.VerifyTime.Seconds(), "verify-s")
	b.ReportMetric(float64(peak>>20), "peak-RSS-MiB")
	b.ReportMetric(float64(res.DiskBytes>>20), "disk-MiB")
}

func preloadIAVL(b *testing.B, db dbm.DB, keys int) {
	b.Helper()
	start := time.Now()
	rs := rootmulti.NewStore(db, log.NewNopLogger(), metrics.NewNoOpMetrics())
	bank, acc := types.NewKVStoreKey("bank"), types.NewKVStoreKey("acc")
	rs.MountStoreWithDB(bank, types.StoreTypeIAVL, nil)
	rs.MountStoreWithDB(acc, types.StoreTypeIAVL, nil)
	if err := rs.LoadLatestVersion(); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for done := 0; done < keys; {
		for i := 0; i < 100_000 && done < keys; i, done = i+1, done+1 {
			// IAVL keeps the slices it is given.
			key, value := make([]byte, 32), make([]byte, 40)
			for j := 0; j < 32; j += 8 {
				binary.BigEndian.PutUint64(key[j:], rng.Uint64())
			}
			for j := 0; j < 40; j += 8 {
				binary.BigEndian.PutUint64(value[j:], rng.Uint64())
			}
			store := bank
			if rng.IntN(10) < 3 {
				store = acc
			}
			rs.GetCommitKVStore(store).Set(key, value)
		}
		rs.Commit()
	}
	b.Logf("preloaded %d IAVL keys in %v", keys, time.Since(start).Round(time.Second))
}
