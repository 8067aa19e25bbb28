package commitment

import (
	"fmt"
	"testing"
)

// A commit's batch starts with room for what it will hold (the first
// commit after an open has no last batch to go by): the estimate is no
// less than the batch the commit writes, and not far above it, whether
// the block overwrites, deletes or creates keys.
func TestBatchEstimateCoversTheBatch(t *testing.T) {
	db := openElidedStore(t)
	for _, tc := range []struct {
		name                      string
		updates, deletes, inserts int
		valueBytes                int
	}{
		{"overwrites", 1000, 0, 0, 32},
		{"large values", 300, 0, 0, 4000},
		{"deletes", 0, 500, 0, 0},
		{"new keys", 0, 0, 1000, 100},
		{"a mix", 500, 100, 100, 200},
	} {
		next := 5000 + 1000*len(tc.name)
		for i := range tc.updates {
			if err := db.Set(testTrees[0], fmt.Appendf(nil, "key%06d", (i*7)%5000), make([]byte, tc.valueBytes)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range tc.deletes {
			if err := db.Delete(testTrees[0], fmt.Appendf(nil, "key%06d", 4999-i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range tc.inserts {
			if err := db.Set(testTrees[0], fmt.Appendf(nil, "key%06d", next+i), make([]byte, tc.valueBytes)); err != nil {
				t.Fatal(err)
			}
		}
		db.writeMu.Lock()
		w, err := db.workingLocked()
		estimate := 0
		if err == nil {
			estimate = batchEstimate(w, supersededPages(w))
		}
		db.writeMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Commit(); err != nil {
			t.Fatal(err)
		}
		if actual := db.protocol.batchSize; estimate < actual || estimate > 2*actual {
			t.Errorf("%s: estimated %d bytes, the batch holds %d", tc.name, estimate, actual)
		} else {
			t.Logf("%s: estimated %d bytes, the batch holds %d", tc.name, estimate, actual)
		}
	}
}
