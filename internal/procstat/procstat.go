// Package procstat reads the process's memory high-water mark (Linux), for
// the benchmarks and tests that report or bound peak memory.
package procstat

import (
	"errors"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// PeakRSS is the process's peak resident set (VmHWM) since it started or
// since the last ResetPeakRSS, in bytes.
func PeakRSS() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("/proc/self/status has no VmHWM")
}

// ResetPeakRSS forgets the peak so far (clear_refs 5), after returning
// freed memory to the system, so that the next PeakRSS is the peak of what
// runs in between.
func ResetPeakRSS() error {
	runtime.GC()
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
