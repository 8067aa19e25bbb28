package docs

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nomtstore/nomtstore/module"
)

// repoRoot is the repository, one level up from this package.
const repoRoot = ".."

// markdownFiles are the docs a reader of the repository follows links in.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join(repoRoot, "README.md")}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

var (
	fence      = regexp.MustCompile("(?ms)^```.*?^```")
	codeSpan   = regexp.MustCompile("`[^`\n]*`")
	inlineLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refLink    = regexp.MustCompile(`(?m)^\s*\[[^\]]+\]:\s*(\S+)`)
	heading    = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*#*\s*$`)
	slugDrop   = regexp.MustCompile(`[^\p{L}\p{N} _-]`)
)

// links returns the link targets of a markdown text, outside code.
func links(text string) []string {
	text = fence.ReplaceAllString(text, "")
	text = codeSpan.ReplaceAllString(text, "")
	var out []string
	for _, re := range []*regexp.Regexp{inlineLink, refLink} {
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// anchors are the fragment names GitHub gives a markdown file's headings.
func anchors(text string) map[string]bool {
	text = fence.ReplaceAllString(text, "")
	seen := map[string]int{}
	out := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(text, -1) {
		title := strings.ReplaceAll(m[1], "`", "")
		slug := strings.ReplaceAll(slugDrop.ReplaceAllString(strings.ToLower(title), ""), " ", "-")
		if n := seen[slug]; n > 0 {
			out[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

// TestLinks: every relative link in README.md and docs/ names a file of
// the repository (and a heading of it, for a fragment); a link that leaves
// the repository goes to a public web address, never to a sibling folder.
func TestLinks(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range markdownFiles(t) {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, link := range links(string(raw)) {
			if strings.HasPrefix(link, "https://") || strings.HasPrefix(link, "http://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			path, fragment, _ := strings.Cut(link, "#")
			target := file
			if path != "" {
				target = filepath.Join(filepath.Dir(file), filepath.FromSlash(path))
			}
			abs, err := filepath.Abs(target)
			if err != nil {
				t.Fatal(err)
			}
			if rel, err := filepath.Rel(root, abs); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s: link %q leaves the repository", file, link)
				continue
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s: link %q: %s does not exist", file, link, target)
				continue
			}
			if fragment != "" && strings.HasSuffix(target, ".md") {
				text, err := os.ReadFile(target)
				if err != nil {
					t.Fatal(err)
				}
				if !anchors(string(text))[fragment] {
					t.Errorf("%s: link %q: %s has no heading #%s", file, link, target, fragment)
				}
			}
		}
	}
}

// TestNoSharedDocs: nothing in the repository sends a reader to the design
// and benchmark notes outside it; docs/design.md and docs/benchmarks.md are
// the project's own.
func TestNoSharedDocs(t *testing.T) {
	outside := "../" + "shared/"
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "build", "bench-results", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".sh", ".yml", ".yaml", ".proto", ".toml":
		default:
			if d.Name() != "Makefile" {
				return nil
			}
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(raw), outside) {
			t.Errorf("%s refers to %s: point at docs/ instead", path, outside)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOperatorsGuideCoversConfig: every key of the [nomtstore] app.toml
// section is documented in operators.md.
func TestOperatorsGuideCoversConfig(t *testing.T) {
	guide := read(t, "operators.md")
	keys := regexp.MustCompile(`(?m)^([a-z0-9-]+) = `).FindAllStringSubmatch(module.ConfigTemplate, -1)
	if len(keys) == 0 {
		t.Fatal("no keys found in module.ConfigTemplate")
	}
	for _, m := range keys {
		if !strings.Contains(guide, "| `"+m[1]+"` |") {
			t.Errorf("app.toml key %q (module.ConfigTemplate) has no row in operators.md's app.toml table", m[1])
		}
	}
}

// metricNames are the metrics cms.MetricsObserver documents.
func metricNames(t *testing.T) []string {
	t.Helper()
	src := read(t, filepath.Join(repoRoot, "cms", "metrics.go"))
	doc, _, found := strings.Cut(src, "type MetricsObserver")
	if !found {
		t.Fatal("cms/metrics.go has no MetricsObserver: update this test")
	}
	names := regexp.MustCompile(`nomtstore_[a-z_]+`).FindAllString(doc, -1)
	slices.Sort(names)
	return slices.Compact(names)
}

// TestOperatorsGuideCoversMetrics: operators.md has a row for every metric
// the module exports, and the dashboard queries no other.
func TestOperatorsGuideCoversMetrics(t *testing.T) {
	guide := read(t, "operators.md")
	names := metricNames(t)
	if len(names) < 20 {
		t.Fatalf("found only %d metric names in cms/metrics.go: %v", len(names), names)
	}
	for _, name := range names {
		if !strings.Contains(guide, "| `"+name+"` |") {
			t.Errorf("metric %s (cms/metrics.go) has no row in operators.md's metrics table", name)
		}
	}

	var dash struct {
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(read(t, filepath.Join("grafana", "nomtstore.json"))), &dash); err != nil {
		t.Fatalf("grafana/nomtstore.json: %v", err)
	}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			for _, name := range regexp.MustCompile(`nomtstore_[a-z_]+`).FindAllString(target.Expr, -1) {
				used[name] = true
				if !slices.Contains(names, name) {
					t.Errorf("dashboard panel %q queries %s, which the module does not export", p.Title, name)
				}
			}
		}
	}
	for _, want := range []string{"nomtstore_commit_total_ms", "nomtstore_commit_pages", "nomtstore_commit_wal_bytes",
		"nomtstore_table_load_factor", "nomtstore_table_mean_probe", "nomtstore_pruning_lag",
		"nomtstore_pruning_failures", "nomtstore_versions_retained"} {
		if !used[want] {
			t.Errorf("the dashboard has no panel over %s", want)
		}
	}
}

// TestReadmeIsShort: the README is the five-minute page; the rest is in
// docs/.
func TestReadmeIsShort(t *testing.T) {
	if n := strings.Count(read(t, filepath.Join(repoRoot, "README.md")), "\n"); n > 130 {
		t.Errorf("README.md has %d lines: keep it to about 120 and move the rest to docs/", n)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
