package app_test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"testing"
)

// TestSnapshotRestoreCommand restores a node's snapshot into a fresh home
// with `nomtsimd snapshots restore` (nomtsimd's, which shows the store's
// progress): the snapshot is exported from a stopped node, dumped to an
// archive and loaded into the fresh home, as an operator moves one; the
// command reports what it restored, and the restored store's roots at the
// height equal the source's.
func TestSnapshotRestoreCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("a node process: not in -short")
	}
	src := newLocalnet(t, 1)[0]
	src.start()
	src.waitHeight(4)
	src.stop()
	exported := src.run("snapshots", "export", "--home", src.home)
	m := regexp.MustCompile(`Snapshot created at height (\d+), format (\d+)`).FindStringSubmatch(exported)
	if m == nil {
		t.Fatalf("snapshots export said:\n%s", exported)
	}
	height, format := m[1], m[2]
	archive := filepath.Join(t.TempDir(), "snapshot.tar.gz")
	src.run("snapshots", "dump", height, format, "--home", src.home, "--output", archive)

	fresh := &node{t: t, bin: src.bin, home: filepath.Join(t.TempDir(), "fresh")}
	fresh.run("init", "fresh", "--chain-id", switchChainID, "--home", fresh.home)
	fresh.run("snapshots", "load", archive, "--home", fresh.home)
	restored := fresh.run("snapshots", "restore", height, format, "--home", fresh.home)
	if !regexp.MustCompile(fmt.Sprintf(`restored height %s: [0-9,]+ keys, [0-9.]+ (B|KiB|MiB|GiB) of keys and values, \d+ keys/s`, height)).MatchString(restored) {
		t.Fatalf("snapshots restore said:\n%s", restored)
	}
	t.Logf("snapshots restore said:\n%s", restored)
	want := src.run("nomtstore", "module-hash", height, "--home", src.home)
	if got := fresh.run("nomtstore", "module-hash", height, "--home", fresh.home); got != want {
		t.Fatalf("restored store at %s:\n%s\nsource:\n%s", height, got, want)
	}
	if out, err := fresh.try("snapshots", "restore", "not-a-height", format, "--home", fresh.home); err == nil {
		t.Fatalf("a restore of height \"not-a-height\" succeeded:\n%s", out)
	}
}
