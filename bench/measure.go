package bench

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procSample is what the process has done so far: bytes it caused to be
// written to storage (every goroutine, the stores' background compactions
// and flushes included), CPU time and minor page faults (first touches of
// memory the process was given or gave back: on some virtual machines
// each costs over 10 µs).
type procSample struct {
	written    int64
	cpu        time.Duration
	pageFaults int64
	at         time.Time
}

func sampleProc() (procSample, error) {
	s := procSample{at: time.Now()}
	written, err := procWriteBytes()
	if err != nil {
		return s, err
	}
	s.written = written
	ru, err := selfUsage()
	if err != nil {
		return s, err
	}
	s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	s.pageFaults = ru.Minflt
	return s, nil
}

func selfUsage() (syscall.Rusage, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return ru, fmt.Errorf("getrusage: %w", err)
	}
	return ru, nil
}

// minorFaults is the process's minor page faults so far (0 if getrusage
// fails: a block's figure is a diagnosis, not worth failing a run for).
func minorFaults() int64 {
	ru, err := selfUsage()
	if err != nil {
		return 0
	}
	return ru.Minflt
}

// gcSample is the Go collector's work so far: cycles completed and the
// CPU it took (the runtime's estimate, assists and background workers).
type gcSample struct {
	cycles uint64
	cpu    time.Duration
}

var gcMetrics = []string{"/gc/cycles/total:gc-cycles", "/cpu/classes/gc/total:cpu-seconds"}

func sampleGC() gcSample {
	m := make([]metrics.Sample, len(gcMetrics))
	for i, name := range gcMetrics {
		m[i].Name = name
	}
	metrics.Read(m)
	var s gcSample
	if m[0].Value.Kind() == metrics.KindUint64 {
		s.cycles = m[0].Value.Uint64()
	}
	if m[1].Value.Kind() == metrics.KindFloat64 {
		s.cpu = time.Duration(m[1].Value.Float64() * float64(time.Second))
	}
	return s
}

// procWriteBytes reads /proc/self/io: bytes written to storage, minus
// those whose writeback was cancelled by truncating or deleting the file
// first. The kernel counts them when the page is dirtied, so a quiet
// counter means the process has stopped writing.
func procWriteBytes() (int64, error) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, err
	}
	var written, cancelled int64
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/self/io: %q: %w", sc.Text(), err)
		}
		switch name {
		case "write_bytes":
			written = v
		case "cancelled_write_bytes":
			cancelled = v
		}
	}
	return written - cancelled, sc.Err()
}

// settle waits until the process has written nothing for quiet (a store's
// background compactions, page flushes and async pruning finishing), or
// until limit; it returns how long it waited. Runs start settled so that
// none pays for the previous one's debt, and end settled so that the
// bytes a run caused are counted.
func settle(quiet, limit time.Duration) time.Duration {
	start := time.Now()
	last, err := procWriteBytes()
	if err != nil {
		return 0
	}
	stillSince := start
	for time.Since(start) < limit {
		time.Sleep(quiet / 4)
		now, err := procWriteBytes()
		if err != nil {
			break
		}
		if now != last {
			last, stillSince = now, time.Now()
			continue
		}
		if time.Since(stillSince) >= quiet {
			break
		}
	}
	return time.Since(start)
}

// diskUsage is the space dir's files occupy (allocated blocks: a sparse
// page table counts only its written buckets).
func diskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a file a compaction removed while we walked
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// copyTree copies the directory src to dst, keeping runs of zeros as
// holes so that a sparse page table stays sparse.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			// memiavl names its current snapshot by a symlink.
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		}
		return copySparse(path, target)
	})
}

func copySparse(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, in.Close()) }()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	// Buckets of a page table are 4 KiB: holes are found at that grain.
	const grain = 4096
	buf := make([]byte, 1<<20)
	var size int64
	for {
		n, rerr := io.ReadFull(in, buf)
		for off := 0; off < n; off += grain {
			chunk := buf[off:min(off+grain, n)]
			if isZero(chunk) {
				if _, err := out.Seek(int64(len(chunk)), io.SeekCurrent); err != nil {
					return err
				}
			} else if _, err := out.Write(chunk); err != nil {
				return err
			}
		}
		size += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	return out.Truncate(size) // a file ending in a hole
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// nodeHashCost measures one SHA-256 of a 65-byte trie node (tag and two
// children) on this machine, the unit of the hashing lower bound.
func nodeHashCost() time.Duration {
	var node [65]byte
	node[0] = 1
	const rounds = 200_000
	best := time.Duration(1 << 62)
	for range 3 {
		start := time.Now()
		for i := range rounds {
			node[1] = byte(i)
			sum := sha256.Sum256(node[:])
			node[2] = sum[0]
		}
		best = min(best, time.Since(start)/rounds)
	}
	return best
}

// percentile is the p-th percentile (nearest rank) of ds; 100 is the max.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100
	return s[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
