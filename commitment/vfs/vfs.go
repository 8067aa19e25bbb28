// Package vfs is the engine's file-system seam: every file the engine writes
// itself (the page table, WALs, the format file) goes through an FS, so tests
// can inject failed or short writes, failed fsyncs and a full disk (FaultFS),
// and check that a commit fails cleanly and recovery loses nothing; and cut
// the power under the whole store (CrashFS, whose PebbleFS view holds
// Pebble's files too), losing or tearing whatever was not made durable.
//
// It owns no policy: callers decide what to sync and when.
package vfs

import (
	"io"
	"os"

	pebblevfs "github.com/cockroachdb/pebble/vfs"
)

// File is an open file.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Writer
	Sync() error
	Truncate(size int64) error
	// Allocate reserves disk space for the file's first size bytes,
	// extending it to size if it is shorter (fallocate): a file whose
	// space is reserved cannot fail a later write for want of space,
	// where a sparse one (Truncate) fails it at the first write to a hole.
	Allocate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
	Name() string
}

// FS is the file system the engine uses.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	Rename(oldName, newName string) error
	MkdirAll(path string, perm os.FileMode) error
	ReadDir(name string) ([]os.DirEntry, error)
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes a directory's entries (created, renamed, removed files)
	// durable.
	SyncDir(path string) error
}

// PebbleFS returns the file system the engine's Pebble uses beside fs:
// fs's own view for Pebble if it has one (an in-memory FS, whose files
// would otherwise be split between memory and the disk, and whose power
// cuts must hit both), else the operating system's.
func PebbleFS(fs FS) pebblevfs.FS {
	if p, ok := fs.(interface{ PebbleFS() pebblevfs.FS }); ok {
		return p.PebbleFS()
	}
	return pebblevfs.Default
}

// Default is the operating system's file system.
var Default FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

type osFile struct{ *os.File }

func (f osFile) Allocate(size int64) error { return allocate(f.File, size) }

func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) Rename(oldName, newName string) error         { return os.Rename(oldName, newName) }
func (osFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }
func (osFS) ReadDir(name string) ([]os.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) Stat(name string) (os.FileInfo, error)        { return os.Stat(name) }

func (osFS) SyncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// growTo extends f to size without reserving its space; it never shrinks f,
// as fallocate does not.
func growTo(f *os.File, size int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() >= size {
		return nil
	}
	return f.Truncate(size)
}
