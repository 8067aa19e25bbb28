package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/vfs"
)

// CrashFS is an in-memory file system that can lose power, for tests that
// prove what survives a power cut or a kernel panic rather than a killed
// process (whose writes the OS page cache still carries to the disk).
//
// It keeps, for every file, the content as of its last fsync beside the
// current one, and for every directory the entries as of its last fsync
// beside the changes made since, in order. A power cut turns the live state
// into what a disk could hold afterwards:
//
//   - a file's data not made durable by an fsync of the file is lost, kept,
//     or torn: each 512-byte sector written since the last fsync is
//     independently old or new, and the size is the old or the new one (a
//     sector is the unit a disk writes atomically; the page cache writes
//     back dirty pages in no promised order);
//   - a directory's changes (create, rename, remove, link, mkdir) not made
//     durable by an fsync of that directory are lost from some point on:
//     a prefix of them survives, in order, as a journaling file system
//     commits them. A file's own fsync does not make its name durable, and
//     a directory's fsync does not make its files' data durable;
//   - a removed file whose removal is lost comes back with its durable data.
//
// Each file draws its fate (lose, keep, tear) at every cut, so runs see all
// three. Synced data and synced entries always survive.
//
// A cut is armed at the n-th mutating operation from now (CutAfter): the
// disk's state is fixed at that instant, before the operation. The process
// under test keeps running on the live state afterwards, as if it had not
// noticed yet, because Pebble treats a failed WAL or MANIFEST write as fatal
// and panics (so does any engine that must not go on after one); the test
// closes what it opened and calls Restart, which replaces the live state
// with the state the cut left. This is how Pebble's own strict MemFS is
// used (SetIgnoreSyncs, then ResetToSyncedState), with torn writes and
// lost directory entries added.
//
// It serves the engine's files through FS and Pebble's through PebbleFS,
// so one cut covers the whole store. Paths are slash-separated and rooted at
// "/". A capacity (SetCapacity) models a full disk: a write or an Allocate
// needing more blocks than are free fails with ENOSPC; Truncate extends a
// file sparsely, taking no blocks until they are written.
type CrashFS struct {
	mu  sync.Mutex
	rng *rand.Rand
	// root is the live directory tree. REQUIRES: mu (as does every node).
	root *node
	// ops counts mutating operations; cutAt arms a cut (0: none).
	ops, cutAt int64
	// image is the tree the cut left, cut what it hit; nil until a cut.
	image *node
	cut   *Cut
	// capacity bounds the allocated bytes of every file (0: no bound).
	capacity int64
	locks    map[string]bool
}

// SectorSize is the unit of a torn write: each sector of unsynced data
// survives a cut whole, or not at all.
const SectorSize = 512

// crashBlockSize is the allocation unit the capacity counts.
const crashBlockSize = 4096

// Cut describes the operation a power cut hit: it and every later one are
// lost.
type Cut struct {
	N    int64 // the operation's number (Ops)
	Op   Op
	Path string
}

func (c *Cut) String() string { return fmt.Sprintf("op %d (%s %s)", c.N, c.Op, c.Path) }

// node is a file or a directory.
type node struct {
	dir   bool
	mtime time.Time

	// data is the file's current content, durable its content as of the
	// last fsync. dirty holds the sectors written since; shrunkTo is the
	// smallest size the file had since (bytes past it read as zeros if
	// the new size survives).
	data, durable []byte
	dirty         map[int64]struct{}
	shrunkTo      int64
	// blocks are the allocated blocks, for the capacity.
	blocks map[int64]struct{}

	// entries are the directory's current entries, durableEntries those
	// as of its last fsync, and log the changes since, each applied whole.
	entries, durableEntries map[string]*node
	log                     [][]entryChange
}

// entryChange sets a name to a node, or removes it (nil).
type entryChange struct {
	name string
	to   *node
}

func newDir() *node {
	return &node{dir: true, mtime: time.Now(), entries: map[string]*node{}, durableEntries: map[string]*node{}}
}

func newFile() *node {
	return &node{mtime: time.Now(), dirty: map[int64]struct{}{}, blocks: map[int64]struct{}{}}
}

// NewCrashFS returns an empty crashable file system whose cuts draw their
// outcomes from seed.
func NewCrashFS(seed uint64) *CrashFS {
	return &CrashFS{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), root: newDir(), locks: map[string]bool{}}
}

// Ops is how many mutating operations have run.
func (c *CrashFS) Ops() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops
}

// CutAfter arms a power cut at the n-th mutating operation from now (n >=
// 1), replacing any armed one. The cut fires once.
func (c *CrashFS) CutAfter(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n < 1 {
		n = 1
	}
	c.cutAt = c.ops + n
}

// Disarm cancels an armed cut that has not fired.
func (c *CrashFS) Disarm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cutAt = 0
}

// CutNow cuts the power at once, if no cut has fired yet.
func (c *CrashFS) CutNow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.image == nil {
		c.cutLocked(0, "")
	}
}

// Cut returns the operation the cut hit, or nil if none has fired.
func (c *CrashFS) Cut() *Cut {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}

// Restart boots the machine after the cut (cutting the power now if no cut
// fired): the live state becomes what the cut left, and locks are released.
// Files opened before it must not be used again.
func (c *CrashFS) Restart() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.image == nil {
		c.cutLocked(0, "")
	}
	c.root, c.image, c.cut, c.cutAt = c.image, nil, nil, 0
	c.locks = map[string]bool{}
}

// SetCapacity bounds the bytes the files may allocate (0: no bound).
func (c *CrashFS) SetCapacity(bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.capacity = bytes
}

// Used is the bytes the files hold allocated.
func (c *CrashFS) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.usedLocked()
}

// tickLocked counts a mutating operation, cutting the power before it if it
// is the armed one. REQUIRES: mu.
func (c *CrashFS) tickLocked(op Op, name string) {
	c.ops++
	if c.cutAt > 0 && c.ops >= c.cutAt && c.image == nil {
		c.cutLocked(op, name)
	}
}

func (c *CrashFS) cutLocked(op Op, name string) {
	c.image = c.crashTree(c.root, map[*node]*node{})
	c.cut = &Cut{N: c.ops, Op: op, Path: name}
	c.cutAt = 0
}

// crashTree returns what n is after a power cut. Nodes reached by several
// names (links) stay one node.
func (c *CrashFS) crashTree(n *node, seen map[*node]*node) *node {
	if out := seen[n]; out != nil {
		return out
	}
	if !n.dir {
		out := newFile()
		seen[n] = out
		out.data = c.crashData(n)
		out.durable = slices.Clone(out.data)
		out.shrunkTo = int64(len(out.data))
		for b := range n.blocks {
			if b*crashBlockSize < int64(len(out.data)) {
				out.blocks[b] = struct{}{}
			}
		}
		return out
	}
	out := newDir()
	seen[n] = out
	survived := c.rng.IntN(len(n.log) + 1)
	entries := make(map[string]*node, len(n.durableEntries))
	for name, child := range n.durableEntries {
		entries[name] = child
	}
	for _, op := range n.log[:survived] {
		for _, ch := range op {
			if ch.to == nil {
				delete(entries, ch.name)
			} else {
				entries[ch.name] = ch.to
			}
		}
	}
	for name, child := range entries {
		out.entries[name] = c.crashTree(child, seen)
		out.durableEntries[name] = out.entries[name]
	}
	return out
}

// crashData is a file's content after a cut: its durable content, with the
// sectors written since lost, kept or torn. REQUIRES: mu.
func (c *CrashFS) crashData(n *node) []byte {
	if len(n.dirty) == 0 && len(n.data) == len(n.durable) && n.shrunkTo >= int64(len(n.durable)) {
		return slices.Clone(n.durable)
	}
	const (
		lose = iota
		keep
		tear
	)
	switch c.rng.IntN(3) {
	case lose:
		return slices.Clone(n.durable)
	case keep:
		return slices.Clone(n.data)
	}
	size := len(n.durable)
	if c.rng.IntN(2) == 0 {
		size = len(n.data)
	}
	out := make([]byte, size)
	copy(out, n.durable)
	if size == len(n.data) && n.shrunkTo < int64(len(n.durable)) {
		clear(out[min(int(n.shrunkTo), size):min(len(n.durable), size)])
	}
	sectors := make([]int64, 0, len(n.dirty))
	for s := range n.dirty {
		sectors = append(sectors, s)
	}
	slices.Sort(sectors)
	for _, s := range sectors {
		if c.rng.IntN(2) == 0 {
			continue
		}
		lo := s * SectorSize
		if lo >= int64(size) {
			continue
		}
		hi := min(lo+SectorSize, int64(size))
		clear(out[lo:hi])
		if lo < int64(len(n.data)) {
			copy(out[lo:hi], n.data[lo:min(hi, int64(len(n.data)))])
		}
	}
	return out
}

// usedLocked sums the allocated blocks of every file reachable now.
func (c *CrashFS) usedLocked() int64 {
	seen := map[*node]bool{}
	var walk func(n *node) int64
	walk = func(n *node) int64 {
		if seen[n] {
			return 0
		}
		seen[n] = true
		if !n.dir {
			return int64(len(n.blocks)) * crashBlockSize
		}
		total := int64(0)
		for _, child := range n.entries {
			total += walk(child)
		}
		return total
	}
	return walk(c.root)
}

// allocateLocked allocates the blocks of [off, end) that n lacks, or fails
// with ENOSPC without allocating any. REQUIRES: mu.
func (c *CrashFS) allocateLocked(op string, n *node, off, end int64, name string) error {
	var missing []int64
	for b := off / crashBlockSize; b*crashBlockSize < end; b++ {
		if _, ok := n.blocks[b]; !ok {
			missing = append(missing, b)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if c.capacity > 0 && c.usedLocked()+int64(len(missing))*crashBlockSize > c.capacity {
		return &os.PathError{Op: op, Path: name, Err: syscall.ENOSPC}
	}
	for _, b := range missing {
		n.blocks[b] = struct{}{}
	}
	return nil
}

// split cleans name into its components below the root.
func split(name string) []string {
	clean := path.Clean("/" + name)
	if clean == "/" {
		return nil
	}
	return strings.Split(clean[1:], "/")
}

// lookupLocked finds a node. REQUIRES: mu.
func (c *CrashFS) lookupLocked(name string) (*node, error) {
	n := c.root
	for _, part := range split(name) {
		if !n.dir {
			return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOTDIR}
		}
		child, ok := n.entries[part]
		if !ok {
			return nil, &os.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		n = child
	}
	return n, nil
}

// parentLocked finds the directory holding name, and name's last element.
// REQUIRES: mu.
func (c *CrashFS) parentLocked(op, name string) (*node, string, error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", &os.PathError{Op: op, Path: name, Err: syscall.EINVAL}
	}
	dir, err := c.lookupLocked(strings.Join(parts[:len(parts)-1], "/"))
	if err != nil {
		return nil, "", &os.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	if !dir.dir {
		return nil, "", &os.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
	}
	return dir, parts[len(parts)-1], nil
}

// changeLocked applies changes to a directory's entries as one operation.
// REQUIRES: mu.
func (d *node) changeLocked(changes ...entryChange) {
	for _, ch := range changes {
		if ch.to == nil {
			delete(d.entries, ch.name)
		} else {
			d.entries[ch.name] = ch.to
		}
	}
	d.log = append(d.log, changes)
	d.mtime = time.Now()
}

// OpenFile implements FS.
func (c *CrashFS) OpenFile(name string, flag int, _ os.FileMode) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.openLocked(name, flag)
}

func (c *CrashFS) openLocked(name string, flag int) (*crashFile, error) {
	n, err := c.lookupLocked(name)
	switch {
	case errors.Is(err, fs.ErrNotExist) && flag&os.O_CREATE != 0:
		dir, base, perr := c.parentLocked("open", name)
		if perr != nil {
			return nil, perr
		}
		c.tickLocked(OpCreate, name)
		n = newFile()
		dir.changeLocked(entryChange{base, n})
	case err != nil:
		return nil, err
	case flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		return nil, &os.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case n.dir && flag&(os.O_WRONLY|os.O_RDWR) != 0:
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	}
	f := &crashFile{fs: c, n: n, name: name, isDir: n.dir,
		read:   flag&os.O_WRONLY == 0,
		write:  flag&(os.O_WRONLY|os.O_RDWR) != 0,
		append: flag&os.O_APPEND != 0}
	if flag&os.O_TRUNC != 0 && f.write {
		c.tickLocked(OpTruncate, name)
		n.truncateLocked(0)
	}
	return f, nil
}

// Remove implements FS: a file, or an empty directory.
func (c *CrashFS) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.lookupLocked(name)
	if err != nil {
		return err
	}
	if n.dir && len(n.entries) > 0 {
		return &os.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	dir, base, err := c.parentLocked("remove", name)
	if err != nil {
		return err
	}
	c.tickLocked(OpRemove, name)
	dir.changeLocked(entryChange{base, nil})
	return nil
}

// Rename implements FS. Both names must be in one directory: a rename
// across directories is two directory changes a cut could split, which
// this model does not draw.
func (c *CrashFS) Rename(oldName, newName string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.lookupLocked(oldName)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldName, New: newName, Err: fs.ErrNotExist}
	}
	oldDir, oldBase, err := c.parentLocked("rename", oldName)
	if err != nil {
		return err
	}
	newDir, newBase, err := c.parentLocked("rename", newName)
	if err != nil {
		return err
	}
	if oldDir != newDir {
		return &os.LinkError{Op: "rename", Old: oldName, New: newName, Err: errors.New("crashfs: renames across directories are not modelled")}
	}
	if target, ok := newDir.entries[newBase]; ok && target.dir {
		return &os.LinkError{Op: "rename", Old: oldName, New: newName, Err: syscall.EISDIR}
	}
	if oldBase == newBase {
		return nil
	}
	c.tickLocked(OpRename, oldName+" -> "+newName)
	newDir.changeLocked(entryChange{oldBase, nil}, entryChange{newBase, n})
	return nil
}

// MkdirAll implements FS. Each directory it creates is an entry of its
// parent, durable once the parent is synced.
func (c *CrashFS) MkdirAll(name string, _ os.FileMode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.root
	for i, part := range split(name) {
		child, ok := n.entries[part]
		if !ok {
			c.tickLocked(OpMkdir, "/"+strings.Join(split(name)[:i+1], "/"))
			child = newDir()
			n.changeLocked(entryChange{part, child})
		} else if !child.dir {
			return &os.PathError{Op: "mkdir", Path: name, Err: syscall.ENOTDIR}
		}
		n = child
	}
	return nil
}

// ReadDir implements FS.
func (c *CrashFS) ReadDir(name string) ([]os.DirEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.lookupLocked(name)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &os.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	names := n.sortedNames()
	out := make([]os.DirEntry, len(names))
	for i, base := range names {
		out[i] = fs.FileInfoToDirEntry(n.entries[base].info(base))
	}
	return out, nil
}

func (n *node) sortedNames() []string {
	names := make([]string, 0, len(n.entries))
	for name := range n.entries {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Stat implements FS.
func (c *CrashFS) Stat(name string) (os.FileInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.lookupLocked(name)
	if err != nil {
		return nil, err
	}
	return n.info(path.Base(path.Clean("/" + name))), nil
}

// SyncDir implements FS: the directory's entries become durable.
func (c *CrashFS) SyncDir(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.lookupLocked(name)
	if err != nil {
		return err
	}
	if !n.dir {
		return &os.PathError{Op: "syncdir", Path: name, Err: syscall.ENOTDIR}
	}
	c.tickLocked(OpSyncDir, name)
	n.syncDirLocked()
	return nil
}

func (n *node) syncDirLocked() {
	n.durableEntries = make(map[string]*node, len(n.entries))
	for name, child := range n.entries {
		n.durableEntries[name] = child
	}
	n.log = nil
}

// truncateLocked sets a file's size; it allocates nothing. REQUIRES: mu.
func (n *node) truncateLocked(size int64) {
	if size < int64(len(n.data)) {
		n.data = n.data[:size]
		n.shrunkTo = min(n.shrunkTo, size)
		for b := range n.blocks {
			if b*crashBlockSize >= size {
				delete(n.blocks, b)
			}
		}
	} else {
		n.data = append(n.data, make([]byte, size-int64(len(n.data)))...)
	}
	n.mtime = time.Now()
}

// syncLocked makes a file's data durable. REQUIRES: mu.
func (n *node) syncLocked() {
	if n.dir {
		n.syncDirLocked()
		return
	}
	if n.shrunkTo < int64(len(n.durable)) {
		clear(n.durable[n.shrunkTo:])
	}
	if len(n.durable) > len(n.data) {
		n.durable = n.durable[:len(n.data)]
	} else {
		n.durable = append(n.durable, make([]byte, len(n.data)-len(n.durable))...)
	}
	for s := range n.dirty {
		lo := s * SectorSize
		if lo < int64(len(n.data)) {
			copy(n.durable[lo:], n.data[lo:min(lo+SectorSize, int64(len(n.data)))])
		}
	}
	clear(n.dirty)
	n.shrunkTo = int64(len(n.data))
}

func (n *node) info(name string) os.FileInfo {
	return crashInfo{name: name, size: int64(len(n.data)), dir: n.dir, mtime: n.mtime}
}

type crashInfo struct {
	name  string
	size  int64
	dir   bool
	mtime time.Time
}

func (i crashInfo) Name() string       { return i.name }
func (i crashInfo) Size() int64        { return i.size }
func (i crashInfo) ModTime() time.Time { return i.mtime }
func (i crashInfo) IsDir() bool        { return i.dir }
func (i crashInfo) Sys() any           { return nil }
func (i crashInfo) Mode() os.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}

// crashFile is an open file (or directory, for syncing). It implements both
// File and Pebble's vfs.File.
type crashFile struct {
	fs                  *CrashFS
	n                   *node
	name                string
	isDir               bool
	read, write, append bool
	// off is the offset of Read and Write. REQUIRES: fs.mu.
	off    int64
	closed bool
}

func (f *crashFile) Name() string { return f.name }

func (f *crashFile) usable(op string, writing bool) error {
	switch {
	case f.closed:
		return &os.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	case f.isDir && (writing || op == "read"):
		return &os.PathError{Op: op, Path: f.name, Err: syscall.EISDIR}
	case writing && !f.write, !writing && !f.read && op == "read":
		return &os.PathError{Op: op, Path: f.name, Err: syscall.EBADF}
	}
	return nil
}

func (f *crashFile) readAtLocked(p []byte, off int64) (int, error) {
	if err := f.usable("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &os.PathError{Op: "read", Path: f.name, Err: syscall.EINVAL}
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// ReadAt implements io.ReaderAt.
func (f *crashFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.readAtLocked(p, off)
}

// Read implements io.Reader.
func (f *crashFile) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	n, err := f.readAtLocked(p, f.off)
	f.off += int64(n)
	if n > 0 && errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

func (f *crashFile) writeAtLocked(p []byte, off int64) (int, error) {
	if err := f.usable("write", true); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &os.PathError{Op: "write", Path: f.name, Err: syscall.EINVAL}
	}
	end := off + int64(len(p))
	if err := f.fs.allocateLocked("write", f.n, off, end, f.name); err != nil {
		return 0, err
	}
	f.fs.tickLocked(OpWrite, f.name)
	if end > int64(len(f.n.data)) {
		f.n.data = append(f.n.data, make([]byte, end-int64(len(f.n.data)))...)
	}
	copy(f.n.data[off:], p)
	for s := off / SectorSize; s*SectorSize < end; s++ {
		f.n.dirty[s] = struct{}{}
	}
	f.n.mtime = time.Now()
	return len(p), nil
}

// WriteAt implements io.WriterAt.
func (f *crashFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.writeAtLocked(p, off)
}

// Write implements io.Writer.
func (f *crashFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.append {
		f.off = int64(len(f.n.data))
	}
	n, err := f.writeAtLocked(p, f.off)
	f.off += int64(n)
	return n, err
}

// Sync implements File: the file's data (or a directory's entries) becomes
// durable.
func (f *crashFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &os.PathError{Op: "sync", Path: f.name, Err: fs.ErrClosed}
	}
	op := OpSync
	if f.isDir {
		op = OpSyncDir
	}
	f.fs.tickLocked(op, f.name)
	f.n.syncLocked()
	return nil
}

// Truncate implements File: sparse, it allocates nothing.
func (f *crashFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.usable("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return &os.PathError{Op: "truncate", Path: f.name, Err: syscall.EINVAL}
	}
	f.fs.tickLocked(OpTruncate, f.name)
	f.n.truncateLocked(size)
	return nil
}

// Allocate implements File: the blocks of the first size bytes are
// allocated (ENOSPC past the capacity) and the file is extended to size.
func (f *crashFile) Allocate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.usable("allocate", true); err != nil {
		return err
	}
	if err := f.fs.allocateLocked("fallocate", f.n, 0, size, f.name); err != nil {
		return err
	}
	f.fs.tickLocked(OpAllocate, f.name)
	if size > int64(len(f.n.data)) {
		f.n.truncateLocked(size)
	}
	return nil
}

// Stat implements File.
func (f *crashFile) Stat() (os.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.n.info(path.Base(path.Clean("/" + f.name))), nil
}

// Close implements File.
func (f *crashFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &os.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

// Preallocate is Pebble's hint; it reserves nothing here, so that Pebble's
// large WAL preallocations do not count against a capacity.
func (f *crashFile) Preallocate(_, _ int64) error { return nil }

// SyncTo promises no durability (fullSync false), the weakest answer
// Pebble's contract allows: Pebble must Sync what it needs durable.
func (f *crashFile) SyncTo(int64) (bool, error) { return false, nil }

// SyncData is Sync.
func (f *crashFile) SyncData() error { return f.Sync() }

// Prefetch does nothing.
func (f *crashFile) Prefetch(_, _ int64) error { return nil }

// Fd has no descriptor to give.
func (f *crashFile) Fd() uintptr { return pebblevfs.InvalidFd }

// PebbleFS returns a view of the same files for Pebble.
func (c *CrashFS) PebbleFS() pebblevfs.FS { return crashPebbleFS{c} }

// crashPebbleFS is a CrashFS as Pebble's vfs.FS.
type crashPebbleFS struct{ c *CrashFS }

var _ pebblevfs.FS = crashPebbleFS{}

// Create removes any file at name first, so that the new file is a new
// inode, as Pebble's contract says.
func (p crashPebbleFS) Create(name string) (pebblevfs.File, error) {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, err := c.lookupLocked(name); err == nil {
		if n.dir {
			return nil, &os.PathError{Op: "create", Path: name, Err: syscall.EISDIR}
		}
		dir, base, err := c.parentLocked("create", name)
		if err != nil {
			return nil, err
		}
		c.tickLocked(OpRemove, name)
		dir.changeLocked(entryChange{base, nil})
	}
	return c.openLocked(name, os.O_RDWR|os.O_CREATE|os.O_EXCL)
}

func (p crashPebbleFS) Link(oldName, newName string) error {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.lookupLocked(oldName)
	if err != nil {
		return err
	}
	if n.dir {
		return &os.LinkError{Op: "link", Old: oldName, New: newName, Err: syscall.EPERM}
	}
	dir, base, err := c.parentLocked("link", newName)
	if err != nil {
		return err
	}
	if _, ok := dir.entries[base]; ok {
		return &os.LinkError{Op: "link", Old: oldName, New: newName, Err: fs.ErrExist}
	}
	c.tickLocked(OpLink, newName)
	dir.changeLocked(entryChange{base, n})
	return nil
}

func (p crashPebbleFS) Open(name string, opts ...pebblevfs.OpenOption) (pebblevfs.File, error) {
	f, err := p.c.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	pf := f.(*crashFile)
	for _, opt := range opts {
		opt.Apply(pf)
	}
	return pf, nil
}

func (p crashPebbleFS) OpenReadWrite(name string, opts ...pebblevfs.OpenOption) (pebblevfs.File, error) {
	f, err := p.c.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	pf := f.(*crashFile)
	for _, opt := range opts {
		opt.Apply(pf)
	}
	return pf, nil
}

// OpenDir opens a directory, for Sync.
func (p crashPebbleFS) OpenDir(name string) (pebblevfs.File, error) {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.lookupLocked(name)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOTDIR}
	}
	return &crashFile{fs: c, n: n, name: name, isDir: true}, nil
}

func (p crashPebbleFS) Remove(name string) error { return p.c.Remove(name) }

func (p crashPebbleFS) RemoveAll(name string) error {
	c := p.c
	c.mu.Lock()
	n, err := c.lookupLocked(name)
	c.mu.Unlock()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if n.dir {
		c.mu.Lock()
		names := n.sortedNames()
		c.mu.Unlock()
		for _, base := range names {
			if err := p.RemoveAll(path.Join(name, base)); err != nil {
				return err
			}
		}
	}
	return c.Remove(name)
}

func (p crashPebbleFS) Rename(oldName, newName string) error { return p.c.Rename(oldName, newName) }

func (p crashPebbleFS) ReuseForWrite(oldName, newName string) (pebblevfs.File, error) {
	if err := p.c.Rename(oldName, newName); err != nil {
		return nil, err
	}
	return p.OpenReadWrite(newName)
}

func (p crashPebbleFS) MkdirAll(dir string, perm os.FileMode) error { return p.c.MkdirAll(dir, perm) }

// Lock creates the file (a lock file's content is nothing) and refuses a
// second lock until the first is released or the machine restarts.
func (p crashPebbleFS) Lock(name string) (io.Closer, error) {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locks[name] {
		return nil, &os.PathError{Op: "lock", Path: name, Err: errors.New("crashfs: already locked")}
	}
	f, err := c.openLocked(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return nil, err
	}
	f.closed = true
	c.locks[name] = true
	return crashLock{c: c, name: name, locks: c.locks}, nil
}

type crashLock struct {
	c     *CrashFS
	name  string
	locks map[string]bool // of the boot that took the lock
}

func (l crashLock) Close() error {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	delete(l.locks, l.name)
	return nil
}

func (p crashPebbleFS) List(dir string) ([]string, error) {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.lookupLocked(dir)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &os.PathError{Op: "list", Path: dir, Err: syscall.ENOTDIR}
	}
	return n.sortedNames(), nil
}

func (p crashPebbleFS) Stat(name string) (os.FileInfo, error) { return p.c.Stat(name) }

func (crashPebbleFS) PathBase(p string) string       { return path.Base(p) }
func (crashPebbleFS) PathJoin(elem ...string) string { return path.Join(elem...) }
func (crashPebbleFS) PathDir(p string) string        { return path.Dir(p) }
func (p crashPebbleFS) GetDiskUsage(string) (pebblevfs.DiskUsage, error) {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	used := uint64(c.usedLocked())
	total := uint64(1 << 40)
	if c.capacity > 0 {
		total = uint64(c.capacity)
	}
	return pebblevfs.DiskUsage{AvailBytes: total - min(total, used), TotalBytes: total, UsedBytes: used}, nil
}
