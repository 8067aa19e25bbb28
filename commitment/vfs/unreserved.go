package vfs

import (
	pebblevfs "github.com/cockroachdb/pebble/vfs"
)

// Unreserved returns fs with its files taking on disk only what is written
// to them: Preallocate does nothing, and ReuseForWrite, with which Pebble
// recycles an old log file as the next one (keeping up to three, each
// preallocated to 110% of a memtable), removes the old file and creates the
// new one empty. For a Pebble whose log is small beside its tables (the
// page history's): reserved, its logs took ~50 MiB per store, as much as
// the whole state of 100k keys. A log written into fresh files costs a
// file-size update per sync, which a synced append pays once per commit.
func Unreserved(fs pebblevfs.FS) pebblevfs.FS { return unreservedFS{fs} }

type unreservedFS struct{ pebblevfs.FS }

func (fs unreservedFS) Create(name string) (pebblevfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return unreservedFile{f}, nil
}

func (fs unreservedFS) ReuseForWrite(oldname, newname string) (pebblevfs.File, error) {
	if err := fs.Remove(oldname); err != nil {
		return nil, err
	}
	return fs.Create(newname)
}

type unreservedFile struct{ pebblevfs.File }

func (unreservedFile) Preallocate(offset, length int64) error { return nil }
