package trie

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestPageIDNavigation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var path KeyPath
		for i := range path {
			path[i] = byte(rng.UintN(256))
		}
		id := RootPageID
		for depth := 1; depth <= MaxPageDepth; depth++ {
			index := path.bits((depth-1)*PageLevels, PageLevels)
			child := id.Child(index)
			if want := PageIDOf(&path, depth); child != want {
				t.Fatalf("depth %d: Child gives %s, PageIDOf %s", depth, child, want)
			}
			if child.ChildIndex() != index {
				t.Fatalf("depth %d: ChildIndex %d, want %d", depth, child.ChildIndex(), index)
			}
			if parent, ok := child.Parent(); !ok || parent != id {
				t.Fatalf("depth %d: Parent %s, want %s", depth, parent, id)
			}
			decoded, err := DecodePageID(child.AppendEncoded(nil))
			if err != nil || decoded != child {
				t.Fatalf("depth %d: decode %s gives %s, %v", depth, child, decoded, err)
			}
			id = child
		}
	}
	if got := RootPageID.Child(5).Child(63).String(); got != "root/5/63" {
		t.Fatalf("String = %q", got)
	}
}

func TestDecodePageIDRejectsInvalid(t *testing.T) {
	tooDeep := RootPageID.AppendEncoded(nil)
	tooDeep[0] = MaxPageDepth + 1
	strayBits := RootPageID.Child(1).AppendEncoded(nil)
	strayBits[10] = 1
	for name, b := range map[string][]byte{"short": {0}, "too deep": tooDeep, "bits past depth": strayBits} {
		if _, err := DecodePageID(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// TestSlotsCoverPage checks that the slot arithmetic maps the six levels
// below a page's top node onto the 126 slots one to one, and that children
// sit where childSlots says.
func TestSlotsCoverPage(t *testing.T) {
	seen := map[int]bool{}
	for level := 1; level <= PageLevels; level++ {
		for index := 0; index < 1<<level; index++ {
			var path KeyPath
			for b := 0; b < level; b++ {
				if index>>(level-1-b)&1 == 1 {
					path[b>>3] |= 0x80 >> uint(b)
				}
			}
			s := slotOf(&path, level)
			if s != Slot(level, index) || seen[s] || s < 0 || s >= PageNodes {
				t.Fatalf("level %d index %d: slot %d", level, index, s)
			}
			seen[s] = true
			if level > 1 {
				parentLeft, _ := childSlots(&path, level-1)
				if parentLeft != Slot(level, index&^1) {
					t.Fatalf("level %d index %d: parent's left child at %d", level, index, parentLeft)
				}
			}
		}
	}
	if len(seen) != PageNodes {
		t.Fatalf("%d slots covered", len(seen))
	}
}

func TestPageNodesAndLabel(t *testing.T) {
	id := RootPageID.Child(7).Child(12)
	p := NewPage(9, id)
	if !p.IsEmpty() {
		t.Fatal("new page not empty")
	}
	store, label, err := p.Label()
	if err != nil || store != 9 || label != id {
		t.Fatalf("label %d %s %v", store, label, err)
	}
	leaf := Node{Hash: ValueHash([]byte("a")), Leaf: true}
	internal := Node{Hash: ValueHash([]byte("b"))}
	p.SetNode(125, leaf)
	p.SetNode(0, internal)
	if p.Node(125) != leaf || p.Node(0) != internal || p.IsEmpty() {
		t.Fatal("nodes not stored")
	}
	p.SetNode(125, Node{})
	p.SetNode(0, Node{})
	if !p.IsEmpty() {
		t.Fatal("cleared page not empty")
	}
}

// damaged applies damage to a copy of a healthy store's pages and expects
// Check to report it.
func TestCheckFindsDamage(t *testing.T) {
	cases := []struct {
		name   string
		damage func(m *MemStore)
		want   string
	}{
		{"flipped hash byte", func(m *MemStore) {
			p := m.pages[RootPageID.Child(firstChild(m))].Clone()
			p[3] ^= 0x40
			m.pages[p.id()] = p
		}, "not the hash of its children"},
		{"leaf bit cleared", func(m *MemStore) {
			id, slot := anyLeaf(m)
			p := m.pages[id].Clone()
			p[leafMapOffset+slot/8] &^= 1 << uint(slot%8)
			m.pages[id] = p
		}, ""},
		{"wrong label", func(m *MemStore) {
			id := RootPageID.Child(firstChild(m))
			p := m.pages[id].Clone()
			p[depthOffset+1] ^= 0x80
			m.pages[id] = p
		}, "labelled"},
		{"missing child page", func(m *MemStore) { delete(m.pages, RootPageID.Child(firstChild(m))) }, "no child page"},
		{"stray page", func(m *MemStore) {
			m.pages[RootPageID.Child(63).Child(63).Child(63).Child(63)] = m.pages[RootPageID]
		}, "pages reachable"},
		{"leaf missing from index", func(m *MemStore) {
			m.leaves.DeleteMin()
		}, "leaf"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := memStoreWith(t, 3000, 5)
			if err := m.Check(); err != nil {
				t.Fatalf("healthy store: %v", err)
			}
			tc.damage(m)
			err := m.Check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want a report containing %q", err, tc.want)
			}
		})
	}
}

// TestUpdateDetectsCorruption: a batch over damaged pages or an index that
// disagrees with the trie fails with ErrCorrupt instead of writing a wrong trie.
func TestUpdateDetectsCorruption(t *testing.T) {
	t.Run("wrong label", func(t *testing.T) {
		m := memStoreWith(t, 500, 6)
		id := RootPageID.Child(firstChild(m))
		m.pages[id] = NewPage(m.tree.Store+1, id)
		var batch []Change
		for i := range 500 {
			batch = append(batch, Change{Key: fmt.Appendf(nil, "acct/6/%d", i), Value: []byte("x")})
		}
		if _, err := m.Apply(batch); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	})
	t.Run("missing child page", func(t *testing.T) {
		m := memStoreWith(t, 2000, 6)
		child := firstChild(m)
		delete(m.pages, RootPageID.Child(child))
		// A key under the lost page: updating it must not treat the page
		// as an empty subtree.
		var key []byte
		for i := 0; ; i++ {
			key = fmt.Appendf(nil, "acct/6/%d", i)
			if p := PathOf(key); p.bits(0, PageLevels) == child {
				break
			}
		}
		if _, err := m.Apply([]Change{{Key: key, Value: []byte("x")}}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	})
	t.Run("index disagrees with leaf", func(t *testing.T) {
		m := memStoreWith(t, 2, 6)
		// Change the value digest of every key in the index behind the
		// trie's back; pushing a leaf down must notice.
		var leaves []Leaf
		m.leaves.Ascend(func(l Leaf) bool { leaves = append(leaves, l); return true })
		for _, l := range leaves {
			l.Hash[0] ^= 1
			m.leaves.ReplaceOrInsert(l)
		}
		if _, err := m.Apply([]Change{{Key: []byte("new key"), Value: []byte("v")}}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
		if _, _, err := m.Prove([]byte("acct/6/0")); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("prove: got %v, want ErrCorrupt", err)
		}
	})
}

func TestMemStoreRejectsBadInput(t *testing.T) {
	cases := []struct {
		name  string
		batch []Change
		want  error
	}{
		{"empty key", []Change{{Key: nil, Value: []byte("v")}}, ErrEmptyKey},
		{"empty value", []Change{{Key: []byte("k"), Value: []byte{}}}, ErrEmptyValue},
		{"nil value", []Change{{Key: []byte("k")}}, ErrEmptyValue},
		{"duplicate", []Change{{Key: []byte("k"), Value: []byte("v")}, {Key: []byte("k"), Delete: true}}, ErrDuplicateKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := memStoreWith(t, 10, 1)
			before := m.Root()
			if _, err := m.Apply(tc.batch); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if m.Root() != before || m.Len() != 10 {
				t.Fatal("a rejected batch changed the store")
			}
		})
	}
}

func firstChild(m *MemStore) int {
	for i := range PageFanout {
		if m.pages[RootPageID.Child(i)] != nil {
			return i
		}
	}
	panic("no child page")
}

func anyLeaf(m *MemStore) (PageID, int) {
	for id, p := range m.pages {
		for s := range PageNodes {
			if p.Node(s).Leaf {
				return id, s
			}
		}
	}
	panic("no leaf")
}

func (p *Page) id() PageID {
	_, id, _ := p.Label()
	return id
}
