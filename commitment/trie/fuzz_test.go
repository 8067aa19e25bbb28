package trie

import (
	"bytes"
	"slices"
	"testing"
)

// FuzzUpdate reads an operation sequence from the input and checks the trie
// against the model after every batch. Each 3-byte group is one op: the
// first byte picks the kind (set, delete, end of batch), the second the key
// among 256 paths drawn so that many share long prefixes, the third the
// value. Short CI runs use testdata/fuzz/FuzzUpdate as the seed corpus.
func FuzzUpdate(f *testing.F) {
	f.Add([]byte{0, 1, 1, 0, 2, 2, 2, 0, 0, 1, 1, 0})
	f.Add(bytes.Repeat([]byte{0, 7, 3, 0, 200, 1, 1, 7, 0, 2, 0, 0}, 20))
	paths := fuzzPaths()
	f.Fuzz(func(t *testing.T, data []byte) {
		m := NewMemStore(1)
		if len(data) > 0 && data[0]&1 == 1 {
			m.Options = UpdateOptions{Workers: 2, ParallelMinOps: 2}
		}
		if len(data) > 0 && data[0]&2 == 2 {
			m.Tree().ElideBelow = 3 + int(data[0]>>2)%8
		}
		model := map[KeyPath]Hash{}
		batch := map[KeyPath]Op{}
		flush := func() {
			ops := make([]Op, 0, len(batch))
			for _, op := range batch {
				ops = append(ops, op)
			}
			slices.SortFunc(ops, func(a, b Op) int { return bytes.Compare(a.Path[:], b.Path[:]) })
			if _, err := m.applyOps(ops); err != nil {
				t.Fatal(err)
			}
			applyToModel(model, ops)
			if want := modelRoot(model); m.Root() != want {
				t.Fatalf("root %s, model %s", m.Root(), want)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			clear(batch)
		}
		for i := 0; i+3 <= len(data); i += 3 {
			path := paths[data[i+1]]
			switch data[i] % 4 {
			case 0, 1:
				batch[path] = Op{Path: path, ValueHash: ValueHash(data[i+2 : i+3])}
			case 2:
				batch[path] = Op{Path: path, Delete: true}
			case 3:
				flush()
			}
		}
		flush()
	})
}

// fuzzPaths returns 256 paths in clusters sharing 0 to 255 leading bits.
func fuzzPaths() []KeyPath {
	paths := make([]KeyPath, 256)
	for i := range paths {
		base := PathOf([]byte{byte(i % 16)})
		p := PathOf([]byte{byte(i), 'x'})
		shared := (i * 37) % MaxDepth
		for bit := 0; bit < shared; bit++ {
			mask := byte(0x80 >> uint(bit&7))
			p[bit>>3] = p[bit>>3]&^mask | base[bit>>3]&mask
		}
		paths[i] = p
	}
	return paths
}
