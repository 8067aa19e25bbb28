package vfs

import (
	"os"

	pebblevfs "github.com/cockroachdb/pebble/vfs"
)

// coalesceBytes is how much a coalescing file gathers before it writes.
const coalesceBytes = 256 << 10

// Coalescing returns fs with the files it creates gathering their writes
// into writes of up to 256 KiB. Pebble writes a table a block at a time
// through a 4 KiB buffer, so with 4 KiB blocks (small, for point lookups)
// every block was a write system call of its own: 408,791 of them in one
// benchmark run at 1M keys (its preload included; 7,598 gathered), on
// machines where entering the kernel costs several microseconds. Nothing
// about durability changes: what a file gathered is written before any
// sync, read, stat or close of it, and a write that fails fails the call
// that flushed it (Pebble syncs every file it relies on, so it learns of
// it there at the latest).
func Coalescing(fs pebblevfs.FS) pebblevfs.FS { return coalescingFS{fs} }

type coalescingFS struct{ pebblevfs.FS }

func (fs coalescingFS) Create(name string) (pebblevfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &coalescingFile{File: f}, nil
}

// coalescingFile is a file created for writing whose sequential writes
// gather in pending until it holds coalesceBytes or the file is synced,
// read, stat'ed, written at an offset or closed. Like the files Pebble
// gets from its own FS, it is used by one goroutine at a time.
type coalescingFile struct {
	pebblevfs.File
	pending []byte
	// failed is the error of the write that failed, which every later call
	// returns: the bytes after it cannot land where the caller expects.
	failed error
}

func (f *coalescingFile) flush() error {
	if f.failed != nil || len(f.pending) == 0 {
		return f.failed
	}
	if _, err := f.File.Write(f.pending); err != nil {
		f.failed = err
		return err
	}
	f.pending = f.pending[:0]
	return nil
}

func (f *coalescingFile) Write(p []byte) (int, error) {
	if f.failed != nil {
		return 0, f.failed
	}
	if len(f.pending)+len(p) > coalesceBytes {
		if err := f.flush(); err != nil {
			return 0, err
		}
	}
	if len(p) >= coalesceBytes {
		n, err := f.File.Write(p)
		if err != nil {
			f.failed = err
		}
		return n, err
	}
	if f.pending == nil {
		f.pending = make([]byte, 0, coalesceBytes)
	}
	f.pending = append(f.pending, p...)
	return len(p), nil
}

func (f *coalescingFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *coalescingFile) Read(p []byte) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *coalescingFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *coalescingFile) Stat() (os.FileInfo, error) {
	if err := f.flush(); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

func (f *coalescingFile) Sync() error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *coalescingFile) SyncData() error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *coalescingFile) SyncTo(length int64) (bool, error) {
	if err := f.flush(); err != nil {
		return false, err
	}
	return f.File.SyncTo(length)
}

func (f *coalescingFile) Close() error {
	err := f.flush()
	f.pending = nil
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	return err
}

var _ pebblevfs.File = (*coalescingFile)(nil)
