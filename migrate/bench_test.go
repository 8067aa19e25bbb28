package migrate_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	dbm "github.com/cosmos/cosmos-db"

	"github.com/nomtstore/nomtstore/internal/iavltest"
	"github.com/nomtstore/nomtstore/internal/procstat"
	"github.com/nomtstore/nomtstore/migrate"
	"github.com/nomtstore/nomtstore/multistore"
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
		start := time.Now()
		if os.Getenv("NOMTSTORE_MIGRATE_IMPORT") != "" {
			iavltest.Import(b, db, keys, 100, 7)
		} else {
			iavltest.Preload(b, db, keys, 7)
		}
		b.Logf("preloaded %d IAVL keys in %v", keys, time.Since(start).Round(time.Second))
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
		src, err := migrate.OpenSource(db, 0, multistore.DecodeCommitInfo)
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
