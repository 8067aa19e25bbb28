package vfs

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	pebblevfs "github.com/cockroachdb/pebble/vfs"
)

// TestUnreserved: a file reserves no space ahead of its writes, and reusing
// a file for another gives an empty one, the old name gone.
func TestUnreserved(t *testing.T) {
	dir := t.TempDir()
	fs := Unreserved(pebblevfs.Default)
	old := filepath.Join(dir, "000001.log")
	f, err := fs.Create(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Preallocate(0, 64<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(old, &st); err != nil {
		t.Fatal(err)
	}
	if allocated := st.Blocks * 512; allocated > 1<<20 {
		t.Fatalf("%d bytes allocated for 100 written", allocated)
	}
	next := filepath.Join(dir, "000002.log")
	g, err := fs.ReuseForWrite(old, next)
	if err != nil {
		t.Fatal(err)
	}
	info, err := g.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() != 0 {
		t.Fatalf("the reused file holds %d bytes", info.Size())
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(old); err == nil {
		t.Fatal("the old file is still there")
	}
}
