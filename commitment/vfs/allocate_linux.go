package vfs

import (
	"errors"
	"os"
	"syscall"
)

// allocate reserves the file's space with fallocate(2). A file system that
// cannot (EOPNOTSUPP) gets the size only, as before: sparse, but usable.
func allocate(f *os.File, size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS):
			return growTo(f, size)
		default:
			return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
		}
	}
}
