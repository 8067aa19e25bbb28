package nodetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The node binary the process tests run, built once per test binary into
// a directory Main removes.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// Main runs a test binary's tests and then removes the node binary Binary
// built; a TestMain returns its code: os.Exit(nodetest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	return code
}

// Binary returns a Line.Binary that builds the node's main package at
// pkg (relative to the test's directory) once and returns its path.
func Binary(pkg string) func(t *testing.T) string {
	return func(t *testing.T) string {
		t.Helper()
		binOnce.Do(func() {
			if binDir, binErr = os.MkdirTemp("", "nomtsimd-bin"); binErr != nil {
				return
			}
			binPath = filepath.Join(binDir, "nomtsimd")
			if out, err := exec.Command("go", "build", "-o", binPath, pkg).CombinedOutput(); err != nil {
				binErr = err
				t.Logf("%s", out)
			}
		})
		if binErr != nil {
			t.Fatalf("building %s: %v", pkg, binErr)
		}
		return binPath
	}
}
