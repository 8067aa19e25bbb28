//go:build !race

package commitment

// raceEnabled: see race_on_test.go.
const raceEnabled = false
