//go:build !linux

package vfs

import "os"

// allocate has no portable way to reserve space outside Linux: the file
// gets its size, sparse.
func allocate(f *os.File, size int64) error { return growTo(f, size) }
