package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble"
)

// mustFile creates (or truncates) name holding data, synced if sync.
func mustFile(t *testing.T, fs *CrashFS, name string, data []byte, sync bool) {
	t.Helper()
	f, err := fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustSyncDir(t *testing.T, fs *CrashFS, name string) {
	t.Helper()
	if err := fs.SyncDir(name); err != nil {
		t.Fatal(err)
	}
}

// readFile returns a file's content, or nil if it does not exist.
func readFile(t *testing.T, fs *CrashFS, name string) []byte {
	t.Helper()
	f, err := fs.OpenFile(name, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return data
}

func names(t *testing.T, fs *CrashFS, dir string) string {
	t.Helper()
	entries, err := fs.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return strings.Join(out, ",")
}

// TestCrashFSFileData: synced data always survives a cut; each sector
// written since the last sync is old or new, never anything else; and over
// many cuts a file's unsynced writes are seen lost, kept and torn.
func TestCrashFSFileData(t *testing.T) {
	old := bytes.Repeat([]byte{'o'}, 4*SectorSize)
	outcomes := map[string]int{}
	for seed := range uint64(200) {
		fs := NewCrashFS(seed)
		if err := fs.MkdirAll("/d", 0o755); err != nil {
			t.Fatal(err)
		}
		mustSyncDir(t, fs, "/")
		mustFile(t, fs, "/d/f", old, true)
		mustSyncDir(t, fs, "/d")
		// Unsynced: overwrite sectors 1 and 2, append two sectors.
		f, err := fs.OpenFile("/d/f", os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(bytes.Repeat([]byte{'n'}, 2*SectorSize), SectorSize); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(bytes.Repeat([]byte{'a'}, 2*SectorSize), 4*SectorSize); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
		fs.Restart()
		got := readFile(t, fs, "/d/f")
		if len(got) != 4*SectorSize && len(got) != 6*SectorSize {
			t.Fatalf("seed %d: size %d, want the old or the new one", seed, len(got))
		}
		kinds := ""
		for s := 0; s < len(got)/SectorSize; s++ {
			sector := got[s*SectorSize : (s+1)*SectorSize]
			var allowed []byte
			switch s {
			case 0, 3:
				allowed = []byte{'o'}
			case 1, 2:
				allowed = []byte{'o', 'n'}
			default:
				allowed = []byte{0, 'a'}
			}
			if bytes.Count(sector, sector[:1]) != SectorSize || !slices.Contains(allowed, sector[0]) {
				t.Fatalf("seed %d: sector %d holds %q..., want one of %q whole", seed, s, sector[:8], allowed)
			}
			if s > 0 && s != 3 {
				kinds += string(sector[0])
			}
		}
		switch kinds {
		case "oo":
			outcomes["lost"]++
		case "nnaa":
			outcomes["kept"]++
		default:
			outcomes["torn"]++
		}
	}
	for _, o := range []string{"lost", "kept", "torn"} {
		if outcomes[o] == 0 {
			t.Errorf("no cut left the unsynced writes %s: %v", o, outcomes)
		}
	}
}

// TestCrashFSDirectories: a directory's changes survive a cut once it is
// synced; before, a prefix of them survives, in order, and a removed file
// comes back with its synced data.
func TestCrashFSDirectories(t *testing.T) {
	tests := []struct {
		name string
		// run acts on a fresh FS holding /d/keep (synced, its entry too)
		run func(t *testing.T, fs *CrashFS)
		// allowed are the possible listings of /d after a cut
		allowed []string
	}{
		{"create unsynced", func(t *testing.T, fs *CrashFS) {
			mustFile(t, fs, "/d/new", []byte("x"), true)
		}, []string{"keep", "keep,new"}},
		{"create synced", func(t *testing.T, fs *CrashFS) {
			mustFile(t, fs, "/d/new", []byte("x"), true)
			mustSyncDir(t, fs, "/d")
		}, []string{"keep,new"}},
		{"remove unsynced", func(t *testing.T, fs *CrashFS) {
			if err := fs.Remove("/d/keep"); err != nil {
				t.Fatal(err)
			}
		}, []string{"", "keep"}},
		{"rename unsynced", func(t *testing.T, fs *CrashFS) {
			if err := fs.Rename("/d/keep", "/d/moved"); err != nil {
				t.Fatal(err)
			}
		}, []string{"keep", "moved"}},
		{"in order", func(t *testing.T, fs *CrashFS) {
			mustFile(t, fs, "/d/a", nil, false)
			mustFile(t, fs, "/d/b", nil, false)
			if err := fs.Remove("/d/keep"); err != nil {
				t.Fatal(err)
			}
		}, []string{"keep", "a,keep", "a,b,keep", "a,b"}},
		{"mkdir unsynced", func(t *testing.T, fs *CrashFS) {
			if err := fs.MkdirAll("/d/sub", 0o755); err != nil {
				t.Fatal(err)
			}
			mustFile(t, fs, "/d/sub/f", []byte("x"), true)
			mustSyncDir(t, fs, "/d/sub")
		}, []string{"keep", "keep,sub"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			for seed := range uint64(60) {
				fs := NewCrashFS(seed)
				if err := fs.MkdirAll("/d", 0o755); err != nil {
					t.Fatal(err)
				}
				mustSyncDir(t, fs, "/")
				mustFile(t, fs, "/d/keep", []byte("synced"), true)
				mustSyncDir(t, fs, "/d")
				tc.run(t, fs)
				fs.Restart()
				got := names(t, fs, "/d")
				if !slices.Contains(tc.allowed, got) {
					t.Fatalf("seed %d: /d holds %q, want one of %q", seed, got, tc.allowed)
				}
				seen[got] = true
				for _, name := range []string{"/d/keep", "/d/moved"} {
					if data := readFile(t, fs, name); data != nil && string(data) != "synced" {
						t.Fatalf("seed %d: %s holds %q", seed, name, data)
					}
				}
			}
			if len(seen) != len(tc.allowed) {
				t.Errorf("outcomes %v, want each of %q", seen, tc.allowed)
			}
		})
	}
}

// TestCrashFSCutAt: a cut armed at the n-th operation fixes the disk before
// that operation, whatever runs after it.
func TestCrashFSCutAt(t *testing.T) {
	fs := NewCrashFS(1)
	mustFile(t, fs, "/f", []byte("one"), true)
	mustSyncDir(t, fs, "/")
	f, err := fs.OpenFile("/f", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := fs.Ops()
	fs.CutAfter(2) // the write passes, its sync is cut
	if _, err := f.WriteAt([]byte("two"), 0); err != nil {
		t.Fatal(err)
	}
	if fs.Cut() != nil {
		t.Fatal("cut before the armed operation")
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	cut := fs.Cut()
	if cut == nil || cut.Op != OpSync || cut.Path != "/f" || cut.N != start+2 {
		t.Fatalf("cut %v, want the sync of /f at op %d", cut, start+2)
	}
	// The process runs on: its later syncs change nothing on the disk.
	if _, err := f.WriteAt([]byte("three"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, fs, "/f"); string(got) != "three" {
		t.Fatalf("live state %q", got)
	}
	_ = f.Close()
	fs.Restart()
	if got := string(readFile(t, fs, "/f")); got != "one" && got != "two" {
		t.Fatalf("after the cut /f holds %q, want one (the unsynced write lost) or two", got)
	}
	if fs.Cut() != nil {
		t.Fatal("a restart leaves a cut")
	}
}

// TestCrashFSCapacity: a full disk fails writes and allocations with
// ENOSPC; a sparse extension takes no space until written.
func TestCrashFSCapacity(t *testing.T) {
	fs := NewCrashFS(1)
	fs.SetCapacity(4 * crashBlockSize)
	f, err := fs.OpenFile("/table", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(100 * crashBlockSize); err != nil {
		t.Fatalf("a sparse extension needs no space: %v", err)
	}
	block := make([]byte, crashBlockSize)
	for i := range 4 {
		if _, err := f.WriteAt(block, int64(i*10*crashBlockSize)); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
	}
	if _, err := f.WriteAt(block, 50*crashBlockSize); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write past the capacity: %v", err)
	}
	if _, err := f.WriteAt(block, 0); err != nil {
		t.Fatalf("rewriting an allocated block: %v", err)
	}
	g, err := fs.OpenFile("/other", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Allocate(crashBlockSize); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("allocation past the capacity: %v", err)
	}
	_ = f.Close()
	if err := fs.Remove("/table"); err != nil {
		t.Fatal(err)
	}
	if err := g.Allocate(3 * crashBlockSize); err != nil {
		t.Fatalf("allocation after freeing: %v", err)
	}
	if st, _ := g.Stat(); st.Size() != 3*crashBlockSize || fs.Used() != 3*crashBlockSize {
		t.Fatalf("allocated file of %d bytes, %d used", st.Size(), fs.Used())
	}
	_ = g.Close()
}

// TestCrashFSErrors: misuse is refused with the error the OS would give.
func TestCrashFSErrors(t *testing.T) {
	fs := NewCrashFS(1)
	mustFile(t, fs, "/f", []byte("x"), true)
	if err := fs.MkdirAll("/d/e", 0o755); err != nil {
		t.Fatal(err)
	}
	ro, err := fs.OpenFile("/f", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, writeErr := ro.Write([]byte("y"))
	_ = ro.Close()
	_, excl := fs.OpenFile("/f", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	_, missing := fs.OpenFile("/nope/f", os.O_RDWR|os.O_CREATE, 0o644)
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"write to a read-only file", writeErr, syscall.EBADF},
		{"exclusive create of an existing file", excl, os.ErrExist},
		{"create in a missing directory", missing, os.ErrNotExist},
		{"remove a non-empty directory", fs.Remove("/d"), syscall.ENOTEMPTY},
		{"remove a missing file", fs.Remove("/g"), os.ErrNotExist},
		{"mkdir through a file", fs.MkdirAll("/f/x", 0o755), syscall.ENOTDIR},
		{"sync a file as a directory", fs.SyncDir("/f"), syscall.ENOTDIR},
		{"close twice", ro.Close(), os.ErrClosed},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if err := fs.Rename("/f", "/d/f"); err == nil || !strings.Contains(err.Error(), "across directories") {
		t.Errorf("rename across directories: %v", err)
	}
}

// TestCrashFSPebble runs Pebble on a CrashFS and cuts the power at random
// operations while it writes: after a restart Pebble opens, and every key
// whose synced write returned before the cut is there.
func TestCrashFSPebble(t *testing.T) {
	cuts := 30
	if testing.Short() {
		cuts = 8
	}
	for seed := range uint64(cuts) {
		fs := NewCrashFS(seed)
		opts := func() *pebble.Options {
			return &pebble.Options{FS: fs.PebbleFS(), MemTableSize: 64 << 10, Logger: quietLogger{}}
		}
		// Pebble syncs the directories inside its own, never the parent's
		// entry for it: that is its caller's to make durable.
		if err := fs.MkdirAll("/db", 0o755); err != nil {
			t.Fatal(err)
		}
		mustSyncDir(t, fs, "/")
		db, err := pebble.Open("/db", opts())
		if err != nil {
			t.Fatal(err)
		}
		fs.CutAfter(1 + int64(seed*7919%3000))
		// written is each key's last write (its index), acked its last
		// write made durable: a synced write makes every earlier one
		// durable too.
		written, acked := map[string]int{}, map[string]int{}
		for i := 0; fs.Cut() == nil; i++ {
			key := fmt.Sprintf("k%04d", i%700)
			sync := pebble.NoSync
			if i%3 == 0 {
				sync = pebble.Sync
			}
			if err := db.Set([]byte(key), []byte(strconv.Itoa(i)), sync); err != nil {
				t.Fatal(err)
			}
			written[key] = i
			if sync == pebble.Sync && fs.Cut() == nil {
				maps.Copy(acked, written)
			}
		}
		cut := fs.Cut()
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		fs.Restart()
		db, err = pebble.Open("/db", opts())
		if err != nil {
			t.Fatalf("seed %d: reopening after the cut at %v: %v", seed, cut, err)
		}
		for key, want := range acked {
			v, closer, err := db.Get([]byte(key))
			if err != nil {
				t.Fatalf("seed %d (cut at %v): key %s: %v", seed, cut, key, err)
			}
			// A later write of the key may have survived too, an earlier
			// one must not.
			if got, _ := strconv.Atoi(string(v)); got < want {
				t.Fatalf("seed %d (cut at %v): key %s holds write %d, write %d was acknowledged", seed, cut, key, got, want)
			}
			_ = closer.Close()
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)         {}
func (quietLogger) Errorf(string, ...any)        {}
func (quietLogger) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
