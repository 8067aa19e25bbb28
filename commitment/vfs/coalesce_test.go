package vfs

import (
	"bytes"
	"errors"
	"io"
	"testing"

	pebblevfs "github.com/cockroachdb/pebble/vfs"
)

// countingFS counts the writes that reach its files, and fails them once
// failWrites is set.
type countingFS struct {
	pebblevfs.FS
	writes     int
	failWrites error
}

func (fs *countingFS) Create(name string) (pebblevfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, fs: fs}, nil
}

type countingFile struct {
	pebblevfs.File
	fs *countingFS
}

func (f *countingFile) Write(p []byte) (int, error) {
	if f.fs.failWrites != nil {
		return 0, f.fs.failWrites
	}
	f.fs.writes++
	return f.File.Write(p)
}

func fileBytes(t *testing.T, fs pebblevfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Small writes reach the file together, before whatever could observe
// them: a sync, a read, a stat, a write at an offset, a close.
func TestCoalescingFileGathersWritesUntilObserved(t *testing.T) {
	observers := []struct {
		name    string
		observe func(pebblevfs.File) error
	}{
		{"sync", func(f pebblevfs.File) error { return f.Sync() }},
		{"sync data", func(f pebblevfs.File) error { return f.SyncData() }},
		{"sync to", func(f pebblevfs.File) error { _, err := f.SyncTo(3); return err }},
		{"read at", func(f pebblevfs.File) error { _, err := f.ReadAt(make([]byte, 1), 0); return err }},
		{"stat", func(f pebblevfs.File) error {
			fi, err := f.Stat()
			if err == nil && fi.Size() != 3*4096 {
				err = errors.New("stat does not count the gathered bytes")
			}
			return err
		}},
		{"close", func(f pebblevfs.File) error { return f.Close() }},
	}
	for _, o := range observers {
		t.Run(o.name, func(t *testing.T) {
			base := &countingFS{FS: pebblevfs.NewMem()}
			fs := Coalescing(base)
			f, err := fs.Create("table")
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			for i := range 3 {
				block := bytes.Repeat([]byte{byte('a' + i)}, 4096)
				want = append(want, block...)
				if n, err := f.Write(block); err != nil || n != len(block) {
					t.Fatalf("write %d: %d, %v", i, n, err)
				}
			}
			if base.writes != 0 {
				t.Fatalf("%d writes reached the file before anything observed it", base.writes)
			}
			if err := o.observe(f); err != nil {
				t.Fatal(err)
			}
			if base.writes != 1 {
				t.Fatalf("%d writes reached the file, want the three blocks in one", base.writes)
			}
			if got := fileBytes(t, base, "table"); !bytes.Equal(got, want) {
				t.Fatalf("the file holds %d bytes, not the %d written", len(got), len(want))
			}
		})
	}
}

// Writes reach the file in order whatever their sizes: one larger than
// the buffer goes straight after what was gathered before it.
func TestCoalescingFileKeepsOrderAcrossSizes(t *testing.T) {
	base := &countingFS{FS: pebblevfs.NewMem()}
	f, err := Coalescing(base).Create("table")
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i, size := range []int{100, 200, coalesceBytes - 300, coalesceBytes + 1, 7, 9} {
		p := bytes.Repeat([]byte{byte(i)}, size)
		want = append(want, p...)
		if _, err := f.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fileBytes(t, base, "table"); !bytes.Equal(got, want) {
		t.Fatalf("the file differs from what was written (%d bytes, want %d)", len(got), len(want))
	}
	// The first three fill the buffer exactly, the fourth goes alone, the
	// last two go together at the close.
	if base.writes != 3 {
		t.Fatalf("%d writes reached the file, want 3", base.writes)
	}
}

// A write that fails when the gathered bytes go out fails that call and
// every later one: nothing after it may land at the wrong offset.
func TestCoalescingFileFailureSticks(t *testing.T) {
	base := &countingFS{FS: pebblevfs.NewMem()}
	f, err := Coalescing(base).Create("table")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("gathered")); err != nil {
		t.Fatal(err)
	}
	full := errors.New("no space left on device")
	base.failWrites = full
	if err := f.Sync(); !errors.Is(err, full) {
		t.Fatalf("sync: %v, want the write's failure", err)
	}
	base.failWrites = nil
	if _, err := f.Write([]byte("more")); !errors.Is(err, full) {
		t.Fatalf("write after the failure: %v, want it again", err)
	}
	if err := f.Close(); !errors.Is(err, full) {
		t.Fatalf("close: %v, want the failure", err)
	}
}
