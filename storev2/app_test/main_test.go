package app_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The nomtsimd binary the process tests run, built once per test binary
// into a directory TestMain removes.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// nomtsimdBinary builds nomtsimd (once) and returns its path.
func nomtsimdBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "nomtsimd-bin"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "nomtsimd")
		if out, err := exec.Command("go", "build", "-o", binPath, "../cmd/nomtsimd").CombinedOutput(); err != nil {
			binErr = err
			t.Logf("%s", out)
		}
	})
	if binErr != nil {
		t.Fatalf("building nomtsimd: %v", binErr)
	}
	return binPath
}
