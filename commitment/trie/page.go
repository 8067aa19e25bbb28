package trie

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// A page holds six levels of the trie below one node: 2+4+...+64 = 126 nodes.
// The node a page hangs from lives in its parent page (the trie root lives in
// no page), and each of the 64 bottom nodes that is internal has a child page
// holding its next six levels. Page p at page depth k holds trie depths
// 6k+1 .. 6k+6; a node at depth d > 0 is in page depth (d-1)/6.
//
// Page format (4096 bytes; these offsets and sizes are format):
//
//	offset size
//	     0 4032  nodes: 126 x 32-byte hash; level l (1..6), index i -> slot 2^l-2+i
//	  4032   16  leaf map: bit s (byte s/8, bit s%8, LSB first) set = slot s is a leaf
//	  4048    4  store id, uint32 big-endian
//	  4052    1  page depth (0 = root page)
//	  4053   32  page path: the first 6*depth bits of the path to the page, rest zero
//	  4085    1  history byte, owned by whoever stores the page (the trie copies it)
//	  4086    2  reserved, zero
//	  4088    8  checksum, owned by whoever stores the page (zero in memory)
//
// An empty node is 32 zero bytes with its leaf bit clear. A page whose nodes
// are all empty does not exist.
const (
	PageSize      = 4096
	PageLevels    = 6
	PageNodes     = 126
	PageFanout    = 64
	MaxPageDepth  = (MaxDepth - 1) / PageLevels // 42: holds depths 253..258
	nodeBytes     = PageNodes * 32
	leafMapOffset = nodeBytes
	storeOffset   = leafMapOffset + 16
	depthOffset   = storeOffset + 4
	pathOffset    = depthOffset + 1
	// HistoryOffset is a byte a page store keeps with the page for its own
	// bookkeeping of the page's past versions (the durable engine: how many
	// of them it stored as differences since the last whole copy). The
	// trie never sets it; a changed page keeps the byte of its prior.
	HistoryOffset = pathOffset + 32
	// ChecksumOffset is where a page store keeps the page's checksum; the
	// trie neither reads nor writes those 8 bytes.
	ChecksumOffset = PageSize - 8
)

// StoreID namespaces the pages of one tree (one module store) so that every
// tree shares one page table.
type StoreID uint32

// PageID names a page within a tree: its depth and the 6*depth bits of path
// leading to it. The zero PageID is the root page.
type PageID struct {
	depth uint8
	path  KeyPath // bits past 6*depth are zero
}

// RootPageID is the page holding trie depths 1..6.
var RootPageID = PageID{}

// PageIDOf returns the page at the given page depth on the way to path.
func PageIDOf(path *KeyPath, pageDepth int) PageID {
	return PageID{depth: uint8(pageDepth), path: path.Prefix(pageDepth * PageLevels)}
}

// Depth is the page's depth: 0 for the root page.
func (id PageID) Depth() int { return int(id.depth) }

// Path returns the path bits leading to the page, zero past 6*Depth.
func (id PageID) Path() KeyPath { return id.path }

// Child returns the page below bottom node i (0..63) of this page.
func (id PageID) Child(i int) PageID {
	c := PageID{depth: id.depth + 1, path: id.path}
	start := int(id.depth) * PageLevels
	for b := 0; b < PageLevels; b++ {
		if i>>(PageLevels-1-b)&1 == 1 {
			bit := start + b
			c.path[bit>>3] |= 0x80 >> uint(bit&7)
		}
	}
	return c
}

// ChildIndex is the bottom-node index in the parent page that this page
// hangs from. It is meaningless for the root page.
func (id PageID) ChildIndex() int {
	return id.path.bits((int(id.depth)-1)*PageLevels, PageLevels)
}

// Parent returns the page this page hangs from; the root page has none.
func (id PageID) Parent() (PageID, bool) {
	if id.depth == 0 {
		return PageID{}, false
	}
	d := int(id.depth) - 1
	return PageID{depth: uint8(d), path: id.path.Prefix(d * PageLevels)}, true
}

// String renders the page as the child indices leading to it: "root/5/63".
func (id PageID) String() string {
	var b strings.Builder
	b.WriteString("root")
	for k := 0; k < int(id.depth); k++ {
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(id.path.bits(k*PageLevels, PageLevels)))
	}
	return b.String()
}

// EncodedPageIDSize is the length of an encoded PageID.
const EncodedPageIDSize = 33

// AppendEncoded appends the page ID's fixed 33-byte encoding: depth, then the
// 32 path bytes. The encoding is format (page labels and page keys use it).
func (id PageID) AppendEncoded(dst []byte) []byte {
	dst = append(dst, id.depth)
	return append(dst, id.path[:]...)
}

// DecodePageID parses what AppendEncoded wrote, rejecting IDs no page can have.
func DecodePageID(b []byte) (PageID, error) {
	if len(b) != EncodedPageIDSize {
		return PageID{}, fmt.Errorf("trie: page id is %d bytes, want %d", len(b), EncodedPageIDSize)
	}
	var id PageID
	id.depth = b[0]
	copy(id.path[:], b[1:])
	if int(id.depth) > MaxPageDepth || id.path.Prefix(int(id.depth)*PageLevels) != id.path {
		return PageID{}, fmt.Errorf("trie: invalid page id (depth %d, path %x)", b[0], b[1:])
	}
	return id, nil
}

// Page is one 4 KiB page in the format drawn above. The zero Page is not a
// valid page: make pages with NewPage so they carry their label.
type Page [PageSize]byte

// NewPage returns an empty page labelled with its store and ID.
func NewPage(store StoreID, id PageID) *Page {
	p := new(Page)
	binary.BigEndian.PutUint32(p[storeOffset:], uint32(store))
	p[depthOffset] = id.depth
	copy(p[pathOffset:pathOffset+32], id.path[:])
	return p
}

// Label returns the store and page ID the page says it is.
func (p *Page) Label() (StoreID, PageID, error) {
	store := StoreID(binary.BigEndian.Uint32(p[storeOffset:]))
	id, err := DecodePageID(p[depthOffset : pathOffset+32])
	return store, id, err
}

// Node returns the node in slot s (0..125).
func (p *Page) Node(s int) Node {
	var n Node
	copy(n.Hash[:], p[s*32:s*32+32])
	n.Leaf = p[leafMapOffset+s>>3]>>(uint(s)&7)&1 == 1
	return n
}

// SetNode stores n in slot s.
func (p *Page) SetNode(s int, n Node) {
	copy(p[s*32:s*32+32], n.Hash[:])
	mask := byte(1) << (uint(s) & 7)
	if n.Leaf {
		p[leafMapOffset+s>>3] |= mask
	} else {
		p[leafMapOffset+s>>3] &^= mask
	}
}

// IsEmpty reports whether every node of the page is empty.
func (p *Page) IsEmpty() bool {
	for _, b := range p[:storeOffset] {
		if b != 0 {
			return false
		}
	}
	return true
}

// Clone returns a copy of the page.
func (p *Page) Clone() *Page {
	c := *p
	return &c
}

// Slot returns the slot of the node at the given page level (1..6) and
// index within that level.
func Slot(level, index int) int { return 1<<uint(level) - 2 + index }

// slotOf returns the slot of the node at depth d (> 0) on path.
func slotOf(path *KeyPath, d int) int {
	start := (d - 1) / PageLevels * PageLevels
	return Slot(d-start, path.bits(start, d-start))
}

// childSlots returns the slots, in the children's page, of the two children
// of the node at depth d on path.
func childSlots(path *KeyPath, d int) (left, right int) {
	start := d / PageLevels * PageLevels
	left = Slot(d-start+1, path.bits(start, d-start)<<1)
	return left, left + 1
}

// Less orders pages by depth, then path: parents before children.
func (id PageID) Less(other PageID) bool {
	if id.depth != other.depth {
		return id.depth < other.depth
	}
	return bytes.Compare(id.path[:], other.path[:]) < 0
}
