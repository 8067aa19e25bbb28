package module

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cast"

	servertypes "github.com/cosmos/cosmos-sdk/server/types"

	"github.com/nomtstore/nomtstore/commitment"
)

// Config is the [nomtstore] section of app.toml.
type Config struct {
	// Dir is the store's directory; relative paths are under the node
	// home. Default data/nomtstore.
	Dir string `mapstructure:"dir"`
	// PageCachePages bounds the engine's page cache, in 4 KiB pages.
	PageCachePages int `mapstructure:"page-cache-pages"`
	// PebbleCacheMB sizes the value store's block cache.
	PebbleCacheMB int `mapstructure:"pebble-cache-mb"`
	// SyncFlush writes each commit's pages before Commit returns instead of
	// overlapping them with the next block.
	SyncFlush bool `mapstructure:"sync-flush"`
}

// DefaultConfig is what `init` writes.
func DefaultConfig() Config {
	return Config{Dir: filepath.Join("data", "nomtstore"), PageCachePages: 65536, PebbleCacheMB: 256}
}

// ConfigTemplate is the [nomtstore] section of app.toml, for a config
// struct with the section under the field NomtStore; append it to the
// server's template (serverconfig.DefaultConfigTemplate).
const ConfigTemplate = `
###############################################################################
###                        nomtstore (state storage)                        ###
###############################################################################

[nomtstore]

# Directory of the store; a relative path is under the node home.
dir = "{{ .NomtStore.Dir }}"

# Page cache of the state trie, in 4 KiB pages, on top of the top levels of
# every store, which are always in memory (65536 pages = 256 MiB).
page-cache-pages = {{ .NomtStore.PageCachePages }}

# Block cache of the value store (Pebble), in MiB.
pebble-cache-mb = {{ .NomtStore.PebbleCacheMB }}

# Write each block's trie pages before Commit returns (slower) instead of
# overlapping them with the next block. Durability is the same either way:
# the commit is durable once its write-ahead log is synced.
sync-flush = {{ .NomtStore.SyncFlush }}
`

// ReadConfig reads the [nomtstore] section, with defaults for what is
// missing, and checks it.
func ReadConfig(appOpts servertypes.AppOptions) (Config, error) {
	c := DefaultConfig()
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
	}
	return c, nil
}

// engineOptions maps the section onto the engine's options.
func (c Config) engineOptions() commitment.Options {
	return commitment.Options{
		PageCachePages:   c.PageCachePages,
		PebbleCacheBytes: int64(c.PebbleCacheMB) << 20,
		SyncFlush:        c.SyncFlush,
	}
}

// dir resolves the store directory under home.
func (c Config) dir(home string) string {
	if filepath.IsAbs(c.Dir) {
		return c.Dir
	}
	return filepath.Join(home, c.Dir)
}
