package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestFaultFS(t *testing.T) {
	dir := t.TempDir()
	fs := NewFaultFS(Default)
	fs.Inject(Fault{Op: OpWrite, PathContains: "a.wal", Skip: 1, Short: true, Err: ENOSPC})
	fs.Inject(Fault{Op: OpSync, PathContains: "b", Sticky: true})
	a, err := fs.OpenFile(filepath.Join(dir, "a.wal"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("first")); err != nil {
		t.Fatalf("skipped write failed: %v", err)
	}
	n, err := a.Write([]byte("second"))
	if !errors.Is(err, syscall.ENOSPC) || n != 3 {
		t.Fatalf("short write: n=%d err=%v", n, err)
	}
	if _, err := a.Write([]byte("third")); err != nil {
		t.Fatalf("a one-shot fault fired twice: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "a.wal")); string(data) != "firstsecthird" {
		t.Fatalf("file holds %q", data)
	}
	b, err := fs.OpenFile(filepath.Join(dir, "b"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := b.Sync(); !errors.Is(err, ErrInjected) {
			t.Fatalf("sticky sync fault: %v", err)
		}
	}
	if err := a.Sync(); err != nil {
		t.Fatalf("fault hit another path: %v", err)
	}
	if fs.Hits() != 3 {
		t.Fatalf("%d hits", fs.Hits())
	}
	fs.Reset()
	if err := b.Sync(); err != nil {
		t.Fatalf("after reset: %v", err)
	}
	_, _ = a.Close(), b.Close()
}
