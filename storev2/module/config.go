package module

import (
	servertypes "github.com/cosmos/cosmos-sdk/server/types"

	"github.com/nomtstore/nomtstore/appconfig"
)

// Config is the [nomtstore] section of app.toml (appconfig.Config, the
// same as the v0.53 line's).
type Config = appconfig.Config

// ConfigTemplate is the [nomtstore] section of app.toml, for a config
// struct with the section under the field NomtStore; append it to the
// server's template (serverconfig.DefaultConfigTemplate).
const ConfigTemplate = appconfig.Template

// DefaultConfig is what `init` writes.
func DefaultConfig() Config { return appconfig.Default() }

// ReadConfig reads the [nomtstore] section, with defaults for what is
// missing, and checks it.
func ReadConfig(appOpts servertypes.AppOptions) (Config, error) { return appconfig.Read(appOpts) }
