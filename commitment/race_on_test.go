//go:build race

package commitment

// raceEnabled: under the race detector, Pebble records a stack trace for
// every table iterator it opens, which makes whole-store checks in tests
// about ten times slower; tests that check after every step check some.
const raceEnabled = true
