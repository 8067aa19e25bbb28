package commitment

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nomtstore/nomtstore/commitment/trie"
	"github.com/nomtstore/nomtstore/commitment/vfs"
)

var crashLong = flag.Bool("long", false, "crash tests: 10,000 kills instead of 200")

// The crash tests run the engine in a child process (this test binary, in
// TestCrashChild) that commits deterministic batches and appends each
// committed version and its roots to a side file once Commit returns. The
// parent kills it with SIGKILL, at a random instant or at a named point of
// the commit protocol, reopens the directory, and checks it holds the last
// reported version or the one right after (killed between the commit point
// and the report), never older, never a mix: roots equal the reported ones
// and every key equals the model, which the parent rebuilds from the same
// deterministic batches.
const (
	envCrashDir     = "NOMTSTORE_CRASH_DIR"
	envCrashSide    = "NOMTSTORE_CRASH_SIDE"
	envCrashSeed    = "NOMTSTORE_CRASH_SEED"
	envCrashKillAt  = "NOMTSTORE_CRASH_KILL_AT"
	envCrashBuckets = "NOMTSTORE_CRASH_BUCKETS"
	envCrashBatch   = "NOMTSTORE_CRASH_BATCH"
	envCrashKillFS  = "NOMTSTORE_CRASH_KILL_FS"
	envCrashGrow    = "NOMTSTORE_CRASH_GROW_KEYS"
	envCrashCommits = "NOMTSTORE_CRASH_COMMITS"
	// envCrashCheckpoint is the child's CheckpointInterval.
	envCrashCheckpoint = "NOMTSTORE_CRASH_CHECKPOINT"
	// envCrashElide is the child's ElideBelow.
	envCrashElide = "NOMTSTORE_CRASH_ELIDE"
	// envCrashVersions makes the child prune to 6 versions behind after
	// each commit and roll back 3 versions after every 5th.
	envCrashVersions = "NOMTSTORE_CRASH_VERSIONS"
)

// crashPoints are the commit protocol's hook points (commit.go).
// "grow" is left to TestCrashDuringGrowth, whose table grows at every commit.
var crashPoints = []string{"begin", "before-commit-point", "after-commit-point", "checkpoint-durable"}

// crashBatch is version v's batch: it depends only on (seed, v), so the
// parent can rebuild the model of any version.
//
// A positive growKeys makes the key space grow by that much per version, so
// that the page table keeps growing.
func crashBatch(seed uint64, v uint64, maxOps, growKeys int) []crashOp {
	rng := rand.New(rand.NewPCG(seed, v))
	ops := make([]crashOp, 1+rng.IntN(maxOps))
	keySpace := 4000
	if growKeys > 0 {
		keySpace = growKeys * int(v)
	}
	for i := range ops {
		ops[i] = crashOp{
			tree: testTrees[rng.IntN(len(testTrees))],
			key:  fmt.Sprintf("key%07d", rng.IntN(keySpace)),
		}
		if rng.IntN(5) == 0 {
			ops[i].delete = true
		} else {
			ops[i].value = fmt.Sprintf("v%d.%d", v, rng.Uint32())
		}
	}
	return ops
}

type crashOp struct {
	tree, key, value string
	delete           bool
}

func applyCrashBatch(m model, ops []crashOp) {
	for _, op := range ops {
		if op.delete {
			delete(m[op.tree], op.key)
		} else {
			m[op.tree][op.key] = []byte(op.value)
		}
	}
}

// TestCrashChild is the child process; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("run by the crash tests as their child process")
	}
	seed, _ := strconv.ParseUint(os.Getenv(envCrashSeed), 10, 64)
	buckets, _ := strconv.ParseUint(os.Getenv(envCrashBuckets), 10, 64)
	maxOps, _ := strconv.Atoi(os.Getenv(envCrashBatch))
	growKeys, _ := strconv.Atoi(os.Getenv(envCrashGrow))
	commits, _ := strconv.Atoi(os.Getenv(envCrashCommits))
	// Checkpoints every few commits: a kill finds WAL records to replay,
	// or lands inside a checkpoint's writes.
	interval, _ := strconv.Atoi(os.Getenv(envCrashCheckpoint))
	elide, _ := strconv.Atoi(os.Getenv(envCrashElide))
	opts := Options{InitialBuckets: buckets, PageCachePages: 256, CheckpointInterval: interval, ElideBelow: elide}
	if at := os.Getenv(envCrashKillAt); at != "" {
		point, nth, _ := strings.Cut(at, ":")
		n, _ := strconv.Atoi(nth)
		opts.hook = func(p string) {
			if p == point {
				if n--; n == 0 {
					_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
					select {} // the signal is on its way
				}
			}
		}
	}
	if at := os.Getenv(envCrashKillFS); at != "" {
		parts := strings.SplitN(at, ":", 3)
		n, _ := strconv.Atoi(parts[2])
		opts.FS = &killFS{FS: vfs.Default, op: parts[0], path: parts[1], n: n}
	}
	db, err := Open(dir, testTrees, opts)
	if err != nil {
		t.Fatalf("child open: %v", err)
	}
	side, err := os.OpenFile(os.Getenv(envCrashSide), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// A kill from a background goroutine (a checkpoint's page writes) can
	// cut the previous life's last line mid-write, at a page of the file:
	// end it, so that it does not run into this life's first report.
	if before, err := os.ReadFile(os.Getenv(envCrashSide)); err == nil && len(before) > 0 && before[len(before)-1] != '\n' {
		if _, err := side.WriteString("\n"); err != nil {
			t.Fatal(err)
		}
	}
	writeSide := func(version uint64, roots map[string]trie.Hash) {
		line := strconv.FormatUint(version, 10)
		for _, name := range testTrees {
			line += " " + roots[name].String()
		}
		if _, err := side.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	versions := os.Getenv(envCrashVersions) != ""
	// A child that is not killed stops by itself after a while.
	for i := range commits {
		v := db.Version() + 1
		for _, op := range crashBatch(seed, v, maxOps, growKeys) {
			if op.delete {
				err = db.Delete(op.tree, []byte(op.key))
			} else {
				err = db.Set(op.tree, []byte(op.key), []byte(op.value))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		res, err := db.Commit()
		if err != nil {
			t.Fatalf("child commit %d: %v", v, err)
		}
		writeSide(res.Version, res.Roots)
		if !versions {
			continue
		}
		if res.Version > 6 {
			if err := db.PruneTo(res.Version - 6); err != nil {
				t.Fatalf("child prune to %d: %v", res.Version-6, err)
			}
		}
		if i%5 == 4 && res.Version > 3 && res.Version-3 >= db.EarliestVersion() {
			if err := db.Rollback(res.Version - 3); err != nil {
				t.Fatalf("child rollback to %d: %v", res.Version-3, err)
			}
			writeSide(db.Version(), db.Roots())
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// killFS kills the process at the n-th operation op ("write", "sync" or
// "rename") on a path containing path: inside the engine's own file work,
// such as halfway through rewriting the page table as it grows.
type killFS struct {
	vfs.FS
	op, path string
	n        int
	mu       sync.Mutex
}

func (k *killFS) at(op, path string) {
	if op != k.op || !strings.Contains(path, k.path) {
		return
	}
	k.mu.Lock()
	k.n--
	hit := k.n == 0
	k.mu.Unlock()
	if hit {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

func (k *killFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := k.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &killFile{File: f, fs: k}, nil
}

func (k *killFS) Rename(oldName, newName string) error {
	k.at("rename", oldName)
	return k.FS.Rename(oldName, newName)
}

type killFile struct {
	vfs.File
	fs *killFS
}

func (f *killFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.at("write", f.Name())
	return f.File.WriteAt(p, off)
}

func (f *killFile) Write(p []byte) (int, error) {
	f.fs.at("write", f.Name())
	return f.File.Write(p)
}

func (f *killFile) Sync() error {
	f.fs.at("sync", f.Name())
	return f.File.Sync()
}

// reported returns the last complete line of the side file: a version and
// its roots (a line cut by the kill is ignored).
func reported(t *testing.T, path string) (uint64, map[string]string) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if completeReport(strings.Fields(sc.Text())) {
			last = sc.Text()
		}
	}
	if last == "" {
		return 0, nil
	}
	fields := strings.Fields(last)
	v, _ := strconv.ParseUint(fields[0], 10, 64)
	roots := map[string]string{}
	for i, name := range testTrees {
		roots[name] = fields[1+i]
	}
	return v, roots
}

// completeReport tells a whole line of the side file from one a kill cut:
// a version and one 64-digit root per tree.
func completeReport(fields []string) bool {
	if len(fields) != 1+len(testTrees) {
		return false
	}
	if _, err := strconv.ParseUint(fields[0], 10, 64); err != nil {
		return false
	}
	for _, root := range fields[1:] {
		if len(root) != 2*len(trie.Hash{}) {
			return false
		}
		if _, err := hex.DecodeString(root); err != nil {
			return false
		}
	}
	return true
}

type crashHarness struct {
	t       *testing.T
	dir     string
	side    string
	seed    uint64
	buckets uint64
	maxOps  int
	// growKeys is passed to crashBatch; commits bounds a child's run.
	growKeys, commits int
	// checkpointEvery is the child's CheckpointInterval (0: the default),
	// elide its ElideBelow (0: the default; it is fixed at the first open).
	checkpointEvery, elide int
	model                  model
	modelAt                uint64
	verdict                map[string]int
	lastRun                string
}

func newCrashHarness(t *testing.T, buckets uint64, maxOps int) *crashHarness {
	return &crashHarness{
		t: t, dir: filepath.Join(t.TempDir(), "db"), side: filepath.Join(t.TempDir(), "side.txt"),
		seed: 99, buckets: buckets, maxOps: maxOps, commits: 40, model: newModel(), verdict: map[string]int{},
	}
}

// runChild starts the child, kills it after delay (or lets it kill itself
// at killAt), and waits for it to end.
func (h *crashHarness) runChild(killAt string, delay time.Duration, env ...string) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envCrashDir+"="+h.dir, envCrashSide+"="+h.side, envCrashSeed+"="+strconv.FormatUint(h.seed, 10),
		envCrashBuckets+"="+strconv.FormatUint(h.buckets, 10), envCrashBatch+"="+strconv.Itoa(h.maxOps),
		envCrashKillAt+"="+killAt, envCrashGrow+"="+strconv.Itoa(h.growKeys), envCrashCommits+"="+strconv.Itoa(h.commits),
		envCrashCheckpoint+"="+strconv.Itoa(h.checkpointEvery), envCrashElide+"="+strconv.Itoa(h.elide))
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	h.lastRun = fmt.Sprintf("killAt=%q delay=%v", killAt, delay)
	defer func() { h.lastRun += " output: " + strings.TrimSpace(out.String()) }()
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	if killAt == "" && delay > 0 {
		timer := time.AfterFunc(delay, func() { _ = cmd.Process.Kill() })
		defer timer.Stop()
	} else {
		timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
		defer timer.Stop()
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		h.verdict["child finished"]++
	case errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled():
		h.verdict["killed"]++
	default:
		h.t.Fatalf("child failed: %v\n%s", err, out.String())
	}
}

// verify reopens the directory and checks it against the reports and the model.
func (h *crashHarness) verify(full bool) uint64 {
	t := h.t
	want, wantRoots := reported(t, h.side)
	if h.modelAt > want {
		// A child killed before reporting version v leaves v for the
		// next check to find; the next child builds on it.
		want, wantRoots = h.modelAt, nil
	}
	var log bytes.Buffer
	db, err := Open(h.dir, testTrees, Options{InitialBuckets: h.buckets, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	if strings.Contains(log.String(), "recovered committed pages from the WAL") {
		h.verdict["replayed committed WAL records"]++
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	got := db.Version()
	switch got {
	case want:
		h.verdict["at reported version"]++
		for name, root := range db.Roots() {
			if wantRoots != nil && root.String() != wantRoots[name] {
				t.Fatalf("version %d tree %s: root %s, reported %s", got, name, root, wantRoots[name])
			}
		}
	case want + 1:
		h.verdict["one past reported (killed before the report)"]++
	default:
		data, _ := os.ReadFile(h.side)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		t.Fatalf("reopened at version %d, last reported %d (last run: %s); side file ends with:\n%s",
			got, want, h.lastRun, strings.Join(lines[max(0, len(lines)-4):], "\n"))
	}
	if got < h.modelAt {
		t.Fatalf("version went back from %d to %d", h.modelAt, got)
	}
	for ; h.modelAt < got; h.modelAt++ {
		applyCrashBatch(h.model, crashBatch(h.seed, h.modelAt+1, h.maxOps, h.growKeys))
	}
	roots := db.Roots()
	for name, root := range h.model.roots(t) {
		if roots[name] != root {
			t.Fatalf("version %d tree %s: root %s, model %s", got, name, roots[name], root)
		}
	}
	for _, name := range testTrees {
		it, err := db.NewIterator(name, nil, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		keys := h.model.sortedKeys(name)
		i := 0
		for ; it.Valid(); it.Next() {
			if i >= len(keys) || string(it.Key()) != keys[i] || !bytes.Equal(it.Value(), h.model[name][keys[i]]) {
				t.Fatalf("version %d tree %s: key %d is %q=%q, model differs", got, name, i, it.Key(), it.Value())
			}
			i++
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		if i != len(keys) {
			t.Fatalf("version %d tree %s: %d keys, model %d", got, name, i, len(keys))
		}
	}
	if full {
		if v, err := db.Check(); err != nil || len(v) > 0 {
			t.Fatalf("version %d: check: %v %v", got, err, v)
		}
	}
	return got
}

// TestCrashRecovery kills the child at random instants and at every named
// point of the commit protocol: 200 kills (10,000 with -long, 40 with -short).
func TestCrashRecovery(t *testing.T) {
	kills := 200
	switch {
	case *crashLong:
		kills = 10000
	case testing.Short():
		kills = 40
	}
	h := newCrashHarness(t, 64, 400)
	rng := rand.New(rand.NewPCG(5, 5))
	atPoint := map[string]int{}
	for i := range kills {
		h.checkpointEvery = 1 + i%4
		switch i % 3 {
		case 0:
			h.runChild("", time.Duration(rng.IntN(120))*time.Millisecond)
		case 1:
			point := crashPoints[rng.IntN(len(crashPoints))]
			atPoint[point]++
			h.runChild(fmt.Sprintf("%s:%d", point, 1+rng.IntN(3)), 0)
		default:
			// Inside a checkpoint, between two of its page writes.
			atPoint["checkpoint write"]++
			h.runChild("", 0, envCrashKillFS+"=write:pages.ht:"+strconv.Itoa(1+rng.IntN(300)))
		}
		h.verify(i%20 == 0)
	}
	t.Logf("%d kills; verdicts %v; named points %v; last version %d", kills, h.verdict, atPoint, h.modelAt)
	if h.verdict["one past reported (killed before the report)"] == 0 || h.verdict["at reported version"] == 0 ||
		h.verdict["replayed committed WAL records"] == 0 {
		t.Fatalf("kills did not land on both sides of the commit point: %v", h.verdict)
	}
}

// TestCrashDuringGrowth starts from a 2-bucket table and commits batches of
// new keys, so that nearly every commit grows the table, and kills the child
// at the start of growth and at random instants while it rewrites the table.
func TestCrashDuringGrowth(t *testing.T) {
	kills := 30
	if testing.Short() {
		kills = 10
	}
	h := newCrashHarness(t, 2, 1500)
	// Every page stored: the table grows at nearly every commit.
	h.growKeys, h.commits, h.elide = 400, 8, 1
	rng := rand.New(rand.NewPCG(6, 6))
	killedIn := map[string]int{}
	for i := range kills {
		before := h.verdict["killed"]
		mode := []string{"at the start of growth", "halfway through the rewrite", "before the rename", "at a random instant"}[i%4]
		switch i % 4 {
		case 0:
			h.runChild(fmt.Sprintf("grow:%d", 1+rng.IntN(2)), 0)
		case 1:
			h.runChild("", 0, envCrashKillFS+"=write:pages.ht.grow:"+strconv.Itoa(1+rng.IntN(200)))
		case 2:
			h.runChild("", 0, envCrashKillFS+"=rename:pages.ht.grow:1")
		default:
			h.runChild("", time.Duration(20+rng.IntN(150))*time.Millisecond)
		}
		if h.verdict["killed"] > before {
			killedIn[mode]++
		}
		h.verify(true)
	}
	t.Logf("kills landed: %v", killedIn)
	for _, mode := range []string{"at the start of growth", "halfway through the rewrite", "before the rename"} {
		if killedIn[mode] == 0 {
			t.Errorf("no kill landed %s", mode)
		}
	}
	db, err := Open(h.dir, testTrees, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := db.Stats().Table
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d kills; verdicts %v; table now %d buckets, generation %d", kills, h.verdict, st.Buckets, st.Generation)
	if st.Generation < 3 {
		t.Fatalf("table grew only %d times", st.Generation)
	}
}
