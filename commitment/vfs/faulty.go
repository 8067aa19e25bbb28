package vfs

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"

	pebblevfs "github.com/cockroachdb/pebble/vfs"
)

// Op is a kind of file-system operation a Fault can hit.
type Op int

// The operations a Fault can target.
const (
	OpWrite Op = iota
	OpSync
	OpTruncate
	OpCreate
	OpRename
	OpRemove
	OpSyncDir
	OpAllocate
	// OpMkdir and OpLink are counted by CrashFS; FaultFS does not inject
	// them.
	OpMkdir
	OpLink
)

var opNames = [...]string{"write", "sync", "truncate", "create", "rename", "remove", "syncdir", "allocate", "mkdir", "link"}

func (o Op) String() string { return opNames[o] }

// ErrInjected is the error a Fault returns unless it names another.
var ErrInjected = fmt.Errorf("vfs: injected fault")

// Fault describes one failure to inject.
type Fault struct {
	Op Op
	// PathContains restricts the fault to paths containing it ("" = any).
	PathContains string
	// Skip lets that many matching operations succeed first.
	Skip int
	// Short makes a failing write write the first half of its bytes first.
	Short bool
	// Err is returned; nil means ErrInjected. syscall.ENOSPC models a full disk.
	Err error
	// Sticky keeps failing every later matching operation too.
	Sticky bool
}

// FaultFS wraps an FS and fails operations as its armed faults say.
type FaultFS struct {
	FS
	mu     sync.Mutex
	faults []*armedFault
	hits   int
}

type armedFault struct {
	Fault
	seen  int
	fired bool
}

// NewFaultFS wraps fs.
func NewFaultFS(fs FS) *FaultFS { return &FaultFS{FS: fs} }

// Inject arms a fault.
func (f *FaultFS) Inject(fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &armedFault{Fault: fault})
}

// Reset disarms every fault.
func (f *FaultFS) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// Hits is how many operations have failed by injection.
func (f *FaultFS) Hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

// check returns the fault hitting this operation, if any.
func (f *FaultFS) check(op Op, path string) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.faults {
		if a.Op != op || !strings.Contains(path, a.PathContains) || (a.fired && !a.Sticky) {
			continue
		}
		if a.seen < a.Skip {
			a.seen++
			continue
		}
		a.fired = true
		f.hits++
		return &a.Fault
	}
	return nil
}

func (ft *Fault) err(op Op, path string) error {
	err := ft.Err
	if err == nil {
		err = ErrInjected
	}
	return &os.PathError{Op: op.String(), Path: path, Err: err}
}

// OpenFile implements FS; creating a file counts as OpCreate.
func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if flag&os.O_CREATE != 0 {
		if ft := f.check(OpCreate, name); ft != nil {
			return nil, ft.err(OpCreate, name)
		}
	}
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

// PebbleFS is the wrapped FS's view for Pebble; faults are not injected
// into Pebble's files.
func (f *FaultFS) PebbleFS() pebblevfs.FS { return PebbleFS(f.FS) }

// Remove implements FS.
func (f *FaultFS) Remove(name string) error {
	if ft := f.check(OpRemove, name); ft != nil {
		return ft.err(OpRemove, name)
	}
	return f.FS.Remove(name)
}

// Rename implements FS.
func (f *FaultFS) Rename(oldName, newName string) error {
	if ft := f.check(OpRename, newName); ft != nil {
		return ft.err(OpRename, newName)
	}
	return f.FS.Rename(oldName, newName)
}

// SyncDir implements FS.
func (f *FaultFS) SyncDir(path string) error {
	if ft := f.check(OpSyncDir, path); ft != nil {
		return ft.err(OpSyncDir, path)
	}
	return f.FS.SyncDir(path)
}

type faultFile struct {
	File
	fs *FaultFS
}

func (ff *faultFile) write(p []byte, do func([]byte) (int, error)) (int, error) {
	if ft := ff.fs.check(OpWrite, ff.Name()); ft != nil {
		n := 0
		if ft.Short && len(p) > 1 {
			n, _ = do(p[:len(p)/2])
		}
		return n, ft.err(OpWrite, ff.Name())
	}
	return do(p)
}

func (ff *faultFile) Write(p []byte) (int, error) { return ff.write(p, ff.File.Write) }

func (ff *faultFile) WriteAt(p []byte, off int64) (int, error) {
	return ff.write(p, func(b []byte) (int, error) { return ff.File.WriteAt(b, off) })
}

func (ff *faultFile) Sync() error {
	if ft := ff.fs.check(OpSync, ff.Name()); ft != nil {
		return ft.err(OpSync, ff.Name())
	}
	return ff.File.Sync()
}

func (ff *faultFile) Truncate(size int64) error {
	if ft := ff.fs.check(OpTruncate, ff.Name()); ft != nil {
		return ft.err(OpTruncate, ff.Name())
	}
	return ff.File.Truncate(size)
}

func (ff *faultFile) Allocate(size int64) error {
	if ft := ff.fs.check(OpAllocate, ff.Name()); ft != nil {
		return ft.err(OpAllocate, ff.Name())
	}
	return ff.File.Allocate(size)
}

// ENOSPC is the error of a full disk, for faults modelling one.
var ENOSPC error = syscall.ENOSPC
