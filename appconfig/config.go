// Package appconfig is the [nomtstore] section of app.toml: its keys,
// defaults, template and checks, and the engine options it maps to. Both
// SDK lines' modules (module, and storev2/module) read it through here, so
// a node's app.toml means the same on either line.
package appconfig

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cast"

	"github.com/nomtstore/nomtstore/commitment"
)

// AppOptions is the SDK's servertypes.AppOptions (the same in both lines).
type AppOptions interface {
	Get(key string) any
}

// Config is the [nomtstore] section of app.toml.
type Config struct {
	// Dir is the store's directory; relative paths are under the node
	// home. Default data/nomtstore.
	Dir string `mapstructure:"dir"`
	// PageCachePages bounds the engine's page cache, in 4 KiB pages.
	PageCachePages int `mapstructure:"page-cache-pages"`
	// PebbleCacheMB sizes the value store's block cache.
	PebbleCacheMB int `mapstructure:"pebble-cache-mb"`
	// ValueCacheMB bounds the cache of the latest values.
	ValueCacheMB int `mapstructure:"value-cache-mb"`
	// LeafCacheMB bounds the cache of elided subtrees' keys.
	LeafCacheMB int `mapstructure:"leaf-cache-mb"`
	// CheckpointMB bounds the committed trie pages held in memory until a
	// checkpoint writes them to the page table.
	CheckpointMB int `mapstructure:"checkpoint-mb"`
	// CheckpointInterval checkpoints after this many blocks at most.
	CheckpointInterval int `mapstructure:"checkpoint-interval"`
	// CheckpointLogMB checkpoints once the write-ahead log holds this much.
	CheckpointLogMB int `mapstructure:"checkpoint-log-mb"`
	// SyncFlush checkpoints at every commit, before Commit returns.
	SyncFlush bool `mapstructure:"sync-flush"`
	// RestoreSortMB bounds the memory a state-sync restore sorts each
	// store's keys in before spilling a sorted run to disk.
	RestoreSortMB int `mapstructure:"restore-sort-mb"`
}

// Default is what `init` writes.
func Default() Config {
	return Config{Dir: filepath.Join("data", "nomtstore"), PageCachePages: 32768, PebbleCacheMB: 256,
		ValueCacheMB: 512, LeafCacheMB: 1024, CheckpointMB: 256, CheckpointInterval: 100, CheckpointLogMB: 64, RestoreSortMB: 256}
}

// Template is the [nomtstore] section of app.toml, for a config
// struct with the section under the field NomtStore; append it to the
// server's template (serverconfig.DefaultConfigTemplate).
const Template = `
###############################################################################
###                        nomtstore (state storage)                        ###
###############################################################################

[nomtstore]

# Directory of the store; a relative path is under the node home.
dir = "{{ .NomtStore.Dir }}"

# Page cache of the state trie, in 4 KiB pages, on top of the top levels of
# every store, which are always in memory (32768 pages = 128 MiB).
page-cache-pages = {{ .NomtStore.PageCachePages }}

# Block cache of the value store (Pebble), in MiB.
pebble-cache-mb = {{ .NomtStore.PebbleCacheMB }}

# Cache of the latest values, in MiB: serves a block's reads and its
# commit's superseded values without a value-store lookup. 0 turns it off.
value-cache-mb = {{ .NomtStore.ValueCacheMB }}

# Cache of the keys of small subtrees whose trie pages are not stored (they
# are rebuilt from the key index when a block changes them), in MiB. 0
# turns it off.
leaf-cache-mb = {{ .NomtStore.LeafCacheMB }}

# Trie pages committed since the last checkpoint stay in memory, up to this
# many MiB, and are written to the page table once per checkpoint (a page
# changed by many blocks is written once). Commits wait for the running
# checkpoint past twice this. Every commit is durable either way: its page
# changes and its batch are synced in the write-ahead log (wal/).
checkpoint-mb = {{ .NomtStore.CheckpointMB }}

# Checkpoint after at most this many blocks, whatever the memory held: it
# bounds what a restart after a crash replays.
checkpoint-interval = {{ .NomtStore.CheckpointInterval }}

# Checkpoint once the write-ahead log (wal/) holds this many MiB: it holds
# every block since the last checkpoint, page changes and batches, and its
# disk is freed only by one.
checkpoint-log-mb = {{ .NomtStore.CheckpointLogMB }}

# Checkpoint at every block, before Commit returns (slower; for tests and
# for copying the directory of a running node).
sync-flush = {{ .NomtStore.SyncFlush }}

# A state-sync restore sorts each store's keys by their trie path in this
# many MiB (about 2.5 million keys per 256 MiB); a bigger store is sorted in
# runs spilled to the store's directory and merged, so a restore's memory
# does not grow with the state.
restore-sort-mb = {{ .NomtStore.RestoreSortMB }}
`

// Read reads the [nomtstore] section, with defaults for what is missing,
// and checks it.
func Read(appOpts AppOptions) (Config, error) {
	c := Default()
	if v := appOpts.Get("nomtstore.dir"); v != nil {
		c.Dir = cast.ToString(v)
	}
	var err error
	if v := appOpts.Get("nomtstore.page-cache-pages"); v != nil {
		if c.PageCachePages, err = cast.ToIntE(v); err != nil {
			return c, fmt.Errorf("nomtstore.page-cache-pages: %w", err)
		}
	}
	if v := appOpts.Get("nomtstore.pebble-cache-mb"); v != nil {
		if c.PebbleCacheMB, err = cast.ToIntE(v); err != nil {
			return c, fmt.Errorf("nomtstore.pebble-cache-mb: %w", err)
		}
	}
	for _, f := range []struct {
		key string
		to  *int
	}{
		{"nomtstore.value-cache-mb", &c.ValueCacheMB},
		{"nomtstore.leaf-cache-mb", &c.LeafCacheMB},
		{"nomtstore.checkpoint-mb", &c.CheckpointMB},
		{"nomtstore.checkpoint-interval", &c.CheckpointInterval},
		{"nomtstore.checkpoint-log-mb", &c.CheckpointLogMB},
		{"nomtstore.restore-sort-mb", &c.RestoreSortMB},
	} {
		if v := appOpts.Get(f.key); v != nil {
			if *f.to, err = cast.ToIntE(v); err != nil {
				return c, fmt.Errorf("%s: %w", f.key, err)
			}
		}
	}
	if v := appOpts.Get("nomtstore.sync-flush"); v != nil {
		if c.SyncFlush, err = cast.ToBoolE(v); err != nil {
			return c, fmt.Errorf("nomtstore.sync-flush: %w", err)
		}
	}
	switch {
	case c.Dir == "":
		return c, fmt.Errorf("nomtstore.dir must not be empty")
	case c.PageCachePages < 0:
		return c, fmt.Errorf("nomtstore.page-cache-pages must be >= 0, got %d", c.PageCachePages)
	case c.PebbleCacheMB < 0:
		return c, fmt.Errorf("nomtstore.pebble-cache-mb must be >= 0, got %d", c.PebbleCacheMB)
	case c.ValueCacheMB < 0:
		return c, fmt.Errorf("nomtstore.value-cache-mb must be >= 0, got %d", c.ValueCacheMB)
	case c.LeafCacheMB < 0:
		return c, fmt.Errorf("nomtstore.leaf-cache-mb must be >= 0, got %d", c.LeafCacheMB)
	case c.CheckpointMB < 0:
		return c, fmt.Errorf("nomtstore.checkpoint-mb must be >= 0, got %d", c.CheckpointMB)
	case c.CheckpointInterval < 0:
		return c, fmt.Errorf("nomtstore.checkpoint-interval must be >= 0, got %d", c.CheckpointInterval)
	case c.CheckpointLogMB < 0:
		return c, fmt.Errorf("nomtstore.checkpoint-log-mb must be >= 0, got %d", c.CheckpointLogMB)
	case c.RestoreSortMB < 0:
		return c, fmt.Errorf("nomtstore.restore-sort-mb must be >= 0, got %d", c.RestoreSortMB)
	}
	return c, nil
}

// EngineOptions maps the section onto the engine's options (for tools
// that open the store themselves, as the node would).
func (c Config) EngineOptions() commitment.Options {
	o := commitment.Options{
		PageCachePages:     c.PageCachePages,
		PebbleCacheBytes:   int64(c.PebbleCacheMB) << 20,
		ValueCacheBytes:    int64(c.ValueCacheMB) << 20,
		LeafCacheBytes:     int64(c.LeafCacheMB) << 20,
		CheckpointBytes:    int64(c.CheckpointMB) << 20,
		CheckpointInterval: c.CheckpointInterval,
		CheckpointLogBytes: int64(c.CheckpointLogMB) << 20,
		SyncFlush:          c.SyncFlush,
		BulkSortBytes:      int64(c.RestoreSortMB) << 20,
	}
	// 0 MiB in app.toml turns a cache off (0 in the engine's options
	// means its default).
	if c.ValueCacheMB == 0 {
		o.ValueCacheBytes = -1
	}
	if c.LeafCacheMB == 0 {
		o.LeafCacheBytes = -1
	}
	return o
}

// StoreDir resolves the store directory under the node's home.
func (c Config) StoreDir(home string) string {
	if filepath.IsAbs(c.Dir) {
		return c.Dir
	}
	return filepath.Join(home, c.Dir)
}
