package cmd

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"cosmossdk.io/log"
	storetypes "cosmossdk.io/store/types"
	"github.com/cespare/xxhash/v2"

	"github.com/nomtstore/nomtstore/commitment"
	"github.com/nomtstore/nomtstore/commitment/trie"
	"github.com/nomtstore/nomtstore/multistore"
)

// makeDeepStore commits 5 versions of two stores under home: bank with
// enough keys to have pages below its root page, acc with three keys (a
// root page only). Every page below a root page is bank's.
func makeDeepStore(t *testing.T, home string) {
	t.Helper()
	s, err := multistore.New(filepath.Join(home, "data", "nomtstore"), log.NewNopLogger(), multistore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bank, acc := storetypes.NewKVStoreKey("bank"), storetypes.NewKVStoreKey("acc")
	s.MountStoreWithDB(bank, storetypes.StoreTypeIAVL, nil)
	s.MountStoreWithDB(acc, storetypes.StoreTypeIAVL, nil)
	if err := s.LoadLatestVersion(); err != nil {
		t.Fatal(err)
	}
	for v := range 5 {
		// Enough keys for pages below the root pages (subtrees of fewer
		// than 64 keys are elided).
		for i := range 3000 {
			// Some keys are rewritten each version, so past versions
			// read superseded pages from history.
			s.GetKVStore(bank).Set(fmt.Appendf(nil, "balance/%d", i*(v+1)), fmt.Appendf(nil, "%d", v))
		}
		if v < 3 {
			s.GetKVStore(acc).Set([]byte{byte(v)}, []byte("account"))
		}
		s.Commit()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies the directory tree src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer func() { _ = in.Close() }()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			_ = out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// tablePage is one page found in a page table file.
type tablePage struct {
	store  trie.StoreID
	id     trie.PageID
	bucket int64
	offset int64 // of its bucket in the file
}

// tablePages lists the pages of the page table under home, going by the
// file layout of commitment/bitbox/table.go: a 4096-byte header (bucket
// count at byte 16), the meta map (a byte per bucket, 0x80 set when full)
// padded to 4096 bytes, then 4096-byte buckets.
func tablePages(t *testing.T, home string) (string, []tablePage) {
	t.Helper()
	path := filepath.Join(home, "data", "nomtstore", "pages.ht")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	buckets := binary.BigEndian.Uint64(data[16:24])
	dataOffset := 4096 + (int64(buckets)+4095)/4096*4096
	var pages []tablePage
	for b := range int64(buckets) {
		if data[4096+b]&0x80 == 0 {
			continue
		}
		off := dataOffset + b*4096
		page := (*trie.Page)(data[off : off+4096])
		store, id, err := page.Label()
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, tablePage{store: store, id: id, bucket: b, offset: off})
	}
	return path, pages
}

// damagePage flips a byte in the node area of the page at off; with
// fixChecksum it then rewrites the bucket's checksum, so that the page reads
// and only its hashes are wrong.
func damagePage(t *testing.T, path string, off int64, fixChecksum bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	page := make([]byte, 4096)
	if _, err := f.ReadAt(page, off); err != nil {
		t.Fatal(err)
	}
	page[40] ^= 0x5a // slot 1: the page's right top node
	if fixChecksum {
		binary.BigEndian.PutUint64(page[trie.ChecksumOffset:], xxhash.Sum64(page[:trie.ChecksumOffset]))
	}
	if _, err := f.WriteAt(page, off); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyFindsADamagedPage: verify recomputes the roots of every
// retained version and fails on a copy of the home with one damaged page,
// naming the store and the page, whether the damage breaks the bucket's
// checksum or only the page's hashes; the original still verifies.
func TestVerifyFindsADamagedPage(t *testing.T) {
	home := t.TempDir()
	makeDeepStore(t, home)
	_, pages := tablePages(t, home)
	var victim tablePage
	for _, p := range pages {
		if p.id.Depth() > 0 {
			victim = p
			break
		}
	}
	if victim.id.Depth() == 0 {
		t.Fatalf("no page below a root page among %d pages", len(pages))
	}

	for _, tc := range []struct {
		name        string
		fixChecksum bool
		want        string // besides the store and the page
	}{
		{"checksum", false, "checksum"},
		{"hashes", true, "is not the hash of its children"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			damaged := t.TempDir()
			copyTree(t, home, damaged)
			path, _ := tablePages(t, damaged)
			damagePage(t, path, victim.offset, tc.fixChecksum)

			for _, args := range [][]string{{"nomtstore", "verify"}, {"nomtstore", "verify", "--latest"}} {
				out, err := run(t, damaged, args...)
				if err == nil {
					t.Fatalf("%v passed over a damaged page: %s", args, out)
				}
				// Each problem is on its own line, with its version. A page
				// whose hashes are wrong is named, with what is wrong with
				// it. A bucket whose checksum fails is named by its number:
				// the first lookup to reach it may be another page's, whose
				// probe sequence passes it (the table's hash seed is drawn
				// per table, so which one varies), and that page's store is
				// then the one reported.
				problem := `^version 5 store bank: .*` + regexp.QuoteMeta("page "+victim.id.String()) + `.*` + regexp.QuoteMeta(tc.want)
				if tc.name == "checksum" {
					problem = `^version 5 store (bank|acc): .*` + regexp.QuoteMeta(fmt.Sprintf("bucket %d checksum", victim.bucket))
				} else if strings.Contains(out, "store acc") {
					t.Errorf("%v: acc reported, its pages are sound:\n%s", args, out)
				}
				if !regexp.MustCompile(`(?m)` + problem).MatchString(out) {
					t.Errorf("%v: output does not list the problem at version 5 (%s):\n%s", args, problem, out)
				}
				// The error counts the problems and quotes the first.
				if _, first, ok := strings.Cut(err.Error(), "the first: "); !ok || !strings.Contains(out, first) {
					t.Errorf("%v: error %q does not quote a problem listed:\n%s", args, err, out)
				}
			}
		})
	}

	// The damage was to the copies only.
	if out, err := run(t, home, "nomtstore", "verify"); err != nil || !strings.Contains(out, "versions  1..5\nstores    2\n") || !strings.Contains(out, "result    ok") {
		t.Fatalf("verify of the original: %q, %v", out, err)
	}
	if out, err := run(t, home, "nomtstore", "verify", "--latest"); err != nil || !strings.Contains(out, "versions  5..5\n") || !strings.Contains(out, "result    ok") {
		t.Fatalf("verify --latest of the original: %q, %v", out, err)
	}
}

// TestVerifyDamagedRootPage: a damaged root page stops the store from
// opening, with an error naming the store and the page.
func TestVerifyDamagedRootPage(t *testing.T) {
	home := t.TempDir()
	makeDeepStore(t, home)
	path, pages := tablePages(t, home)
	for _, p := range pages {
		if p.id == trie.RootPageID {
			damagePage(t, path, p.offset, false)
			break
		}
	}
	_, err := run(t, home, "nomtstore", "verify")
	if err == nil || !regexp.MustCompile(`tree "(bank|acc)".* page root.*checksum`).MatchString(err.Error()) {
		t.Fatalf("verify over a damaged root page: %v", err)
	}
}

// TestStoreCommandErrors: the store commands' refusals, each saying what
// is wrong.
func TestStoreCommandErrors(t *testing.T) {
	home := t.TempDir()
	makeStore(t, home)
	notAHome := t.TempDir()
	if err := os.MkdirAll(filepath.Join(notAHome, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A store with no version yet.
	fresh := t.TempDir()
	db, err := commitment.Open(filepath.Join(fresh, "data", "nomtstore"), []string{"bank"}, commitment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []cliCase{
		{"prune beyond the latest", home, []string{"nomtstore", "prune", "--to", "9"}, "", "--to 9 is beyond the latest version (5)"},
		{"prune --to not a number", home, []string{"nomtstore", "prune", "--to", "two"}, "", `invalid argument "two" for "--to"`},
		{"prune --to negative", home, []string{"nomtstore", "prune", "--to", "-1"}, "", `invalid argument "-1" for "--to"`},
		{"prune not a home", notAHome, []string{"nomtstore", "prune", "--to", "2"}, "", "is not a nomtstore home"},
		{"module hash not a home", notAHome, []string{"nomtstore", "module-hash", "2"}, "", "is not a nomtstore home"},
		{"verify --latest and --all-versions", home, []string{"nomtstore", "verify", "--latest", "--all-versions"}, "", "none of the others can be"},
		{"verify a store with no version", fresh, []string{"nomtstore", "verify"}, "nothing to verify", ""},
		{"prune", home, []string{"nomtstore", "prune", "--to", "3"}, "retained  versions 4..5", ""},
		{"prune again", home, []string{"nomtstore", "prune", "--to", "2"}, "pruned    nothing: versions up to 3 are already pruned", ""},
		{"verify after pruning", home, []string{"nomtstore", "verify"}, "versions  4..5", ""},
		{"module hash of a pruned height", home, []string{"nomtstore", "module-hash", "2"}, "", "pruned"},
	}
	runCases(t, tests)

	// With the node running (the store open), every offline command says
	// so, including prune of any height.
	db, err = commitment.Open(filepath.Join(home, "data", "nomtstore"), nil, commitment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for _, args := range [][]string{
		{"nomtstore", "verify", "--latest"}, {"nomtstore", "prune", "--to", "4"}, {"nomtstore", "module-hash", "5"},
	} {
		if _, err := run(t, home, args...); err == nil || !strings.Contains(err.Error(), "is in use: stop the node first") {
			t.Fatalf("%v with the store held: %v", args, err)
		}
	}
}
