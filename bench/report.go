package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// WriteJSON writes the report, every block included, to file.
func (r *Report) WriteJSON(file string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(data, '\n'), 0o644)
}

// find returns the result of kind in workload, if any.
func (r *Report) find(workload, kind string) *Result {
	for i := range r.Results {
		if res := &r.Results[i]; res.Workload == workload && res.Kind == kind {
			return res
		}
	}
	return nil
}

// workloadNames lists the results' workloads in run order, W3's settings
// apart.
func (r *Report) workloadNames() []string {
	var names []string
	seen := map[string]bool{}
	for _, w := range Workloads {
		for _, res := range r.Results {
			if (res.Workload == w || strings.HasPrefix(res.Workload, w+"/") || strings.HasPrefix(res.Workload, w+" ")) && !seen[res.Workload] {
				seen[res.Workload] = true
				names = append(names, res.Workload)
			}
		}
	}
	return names
}

// ratio is a/b as "12.3×", or "" when either is missing.
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1f×", a/b)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// memiavlNote is how memiavl runs, which its figures depend on.
const memiavlNote = "memiavl (github.com/crypto-org-chain/cronos/memiavl v0.1.0) runs its DB as Cronos's store/rootmulti does, with Cronos's " +
	"app.toml defaults: snapshot-interval 1000, snapshot-keep-recent 1, async-commit-buffer 0 (the WAL written by a goroutine " +
	"behind the commit), zero-copy off, cache-size 1000. Its WAL is opened with NoSync: no commit is fsynced, so a commit " +
	"survives the process crashing but not the machine until the OS has written the WAL back. It has no pruning options, so W3's settings do not " +
	"apply to it. Its preload ends with a snapshot (untimed), as a node past its first 1,000 blocks holds its state in one. A query at a past height loads a read-only DB at that height (the snapshot at or below it, then the WAL " +
	"replayed up to it), as Cronos's rootmulti does; its proofs are IAVL proofs.\n\n"

// WriteMarkdown prints the report as tables, one per workload, with each
// figure's ratio to IAVL v1 on goleveldb measured in the same run.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	c, m := r.Config, r.Machine
	fmt.Fprintf(&b, "# nomtstore benchmark: size %s (N = %d, T = %d, seed %d)\n\n", c.Size, c.N, c.T, c.Seed)
	goDebug := ""
	if m.GoDebug != "" {
		goDebug = ", GODEBUG=" + m.GoDebug
	}
	fmt.Fprintf(&b, "%s; %d CPUs (%s), %.1f GiB RAM, %s%s. One node hash (SHA-256 of 65 bytes): %.0f ns.\n\n",
		m.Date, m.CPUs, m.CPUModel, m.MemoryGiB, m.Go, goDebug, m.NodeHashNs)
	fmt.Fprintf(&b, "× is each figure against %s in this run, written so that more is better: writes/s over its writes/s, "+
		"its commit time, bytes or disk over the store's. Commit is WorkingHash + Commit; every commit is durable (fsynced) but memiavl's.\n\n", referenceKind)
	if settings := c.nomtSettings(); settings != "" {
		fmt.Fprintf(&b, "nomtstore ran with %s (not its defaults).\n\n", settings)
	}
	if slices.Contains(c.Kinds, KindMemIAVL) {
		b.WriteString(memiavlNote)
	}
	for _, name := range r.workloadNames() {
		switch name {
		case W4:
			r.queryTable(&b)
		case W5:
			r.snapshotTable(&b)
		default:
			r.blocksTable(&b, name)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) header(b *strings.Builder, title string, columns ...string) {
	fmt.Fprintf(b, "## %s\n\n| store | %s |\n|---|%s\n", title, strings.Join(columns, " | "), strings.Repeat("---:|", len(columns)))
}

// failedRow prints a failed result's error across its row.
func failedRow(b *strings.Builder, res *Result, columns int) {
	fmt.Fprintf(b, "| %s | FAILED: %s |%s\n", res.Kind, strings.ReplaceAll(res.Error, "|", "\\|"), strings.Repeat(" |", columns-1))
}

func (r *Report) blocksTable(b *strings.Builder, workload string) {
	c := r.Config
	blocks, what := c.Blocks, ""
	switch {
	case workload == W1:
		what = "W1 transfers: one store, 2 reads + 2 writes per transfer, 1% new accounts"
	case workload == W2:
		what = "W2 app-shaped: ten module stores, transactions touching several, prefix iterations of ~100 keys"
	case strings.HasPrefix(workload, W3+"/"):
		blocks = c.W3Blocks
		what = "W3 pruning " + strings.TrimPrefix(workload, W3+"/") + ": W1's blocks"
	default:
		what = workload
	}
	ref := r.find(workload, referenceKind)
	pruning := ""
	if ref != nil {
		pruning = ", pruning " + ref.Pruning
	}
	r.header(b, fmt.Sprintf("%s (%d blocks of T = %d%s)", what, blocks, c.T, pruning),
		"writes/s", "×", "commit p50 / p99 / max ms", "×", "p99/p50", "block p50 ms", "hash bound p50 ms", "hashes/write",
		"B written/write", "×", "disk MiB", "disk growth", "peak RSS MiB", "CPU s")
	for _, kind := range r.Config.Kinds {
		res := r.find(workload, kind)
		if res == nil {
			continue
		}
		if res.Error != "" {
			failedRow(b, res, 14)
			continue
		}
		var refWrites, refCommit, refBytes float64
		if ref != nil && ref.Error == "" {
			refWrites, refCommit, refBytes = ref.WritesPerSec, ref.CommitP50Ms, ref.BytesPerWrite
		}
		bound, hashes, growth := "—", "—", "—"
		if res.HashesPerWrite > 0 {
			bound, hashes = fmt.Sprintf("%.1f", res.HashBoundP50Ms), fmt.Sprintf("%.1f", res.HashesPerWrite)
		}
		if res.DiskGrowth > 0 {
			growth = fmt.Sprintf("%.2f", res.DiskGrowth)
		}
		fmt.Fprintf(b, "| %s | %.0f | %s | %.1f / %.1f / %.1f | %s | %.2f | %.1f | %s | %s | %.0f | %s | %.0f | %s | %.0f | %.1f |\n",
			kind, res.WritesPerSec, ratio(res.WritesPerSec, refWrites),
			res.CommitP50Ms, res.CommitP99Ms, res.CommitMaxMs, ratio(refCommit, res.CommitP50Ms), res.CommitP99Ms/res.CommitP50Ms,
			res.BlockP50Ms, bound, hashes, res.BytesPerWrite, ratio(refBytes, res.BytesPerWrite),
			mib(res.DiskBytes), growth, mib(res.PeakRSS), res.CPUSeconds)
	}
	b.WriteString("\n")
}

func (r *Report) queryTable(b *strings.Builder) {
	c := r.Config
	ref := r.find(W4, referenceKind)
	var names []string
	for _, kind := range c.Kinds {
		if res := r.find(W4, kind); res != nil && res.Error == "" {
			for _, q := range res.Queries {
				names = append(names, q.Name)
			}
			break
		}
	}
	cols := []string{"commit p50 / p99 ms", "writes/s"}
	for _, n := range names {
		cols = append(cols, n+" p50 / p99 ms", "per s", "×")
	}
	r.header(b, fmt.Sprintf("W4 queries while committing (%d blocks of W1, one reader, every proof verified; "+
		"untimed blocks of T = %d first, so that every store holds %d versions above its preload)", c.W4Blocks, c.HistoryT, slices.Max(c.QueryDepths)), cols...)
	for _, kind := range c.Kinds {
		res := r.find(W4, kind)
		if res == nil {
			continue
		}
		if res.Error != "" {
			failedRow(b, res, len(cols))
			continue
		}
		fmt.Fprintf(b, "| %s | %.1f / %.1f | %.0f |", kind, res.CommitP50Ms, res.CommitP99Ms, res.WritesPerSec)
		for i, q := range res.Queries {
			refRate := 0.0
			if ref != nil && ref.Error == "" && i < len(ref.Queries) {
				refRate = ref.Queries[i].PerSec
			}
			fmt.Fprintf(b, " %.3f / %.3f | %.0f | %s |", q.P50Ms, q.P99Ms, q.PerSec, ratio(q.PerSec, refRate))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

func (r *Report) snapshotTable(b *strings.Builder) {
	ref := r.find(W5, referenceKind)
	r.header(b, "W5 state sync: snapshot of the W1 store at its latest height, restored into an empty store of the same kind",
		"keys", "snapshot MiB", "export keys/s", "×", "restore keys/s", "×")
	for _, kind := range r.Config.Kinds {
		res := r.find(W5, kind)
		if res == nil {
			continue
		}
		if res.Error != "" {
			failedRow(b, res, 6)
			continue
		}
		var refExport, refRestore float64
		if ref != nil && ref.Error == "" {
			refExport, refRestore = ref.ExportKeysPerS, ref.RestoreKeysPerS
		}
		fmt.Fprintf(b, "| %s | %d | %.1f | %.0f | %s | %.0f | %s |\n", kind, res.SnapshotKeys, mib(res.SnapshotBytes),
			res.ExportKeysPerS, ratio(res.ExportKeysPerS, refExport), res.RestoreKeysPerS, ratio(res.RestoreKeysPerS, refRestore))
	}
	b.WriteString("\n")
}
