package trie

import (
	"bytes"
	"fmt"

	ics23 "github.com/cosmos/ics23/go"
)

// Prove returns an ICS23 proof about key in the trie whose root is root:
// an existence proof (with the raw key and value) when the key is present, a
// non-existence proof (with its neighbours by path) otherwise. The proofs
// verify with ics23.SmtSpec. An empty trie has no proofs (ErrEmptyTrie).
func (t *Tree) Prove(root Hash, key []byte, pre Preimages) (proof *ics23.CommitmentProof, exists bool, err error) {
	if root.IsEmpty() {
		return nil, false, ErrEmptyTrie
	}
	path := PathOf(key)
	leaf, found, siblings, err := t.find(root, &path)
	if err != nil {
		return nil, false, err
	}
	if found {
		ex, err := t.existenceProof(leaf, siblings, pre)
		if err != nil {
			return nil, false, err
		}
		return &ics23.CommitmentProof{Proof: &ics23.CommitmentProof_Exist{Exist: ex}}, true, nil
	}
	nonex := &ics23.NonExistenceProof{Key: key}
	if nonex.Left, err = t.neighbourProof(root, path, t.Leaves.Floor, pre); err != nil {
		return nil, false, err
	}
	if nonex.Right, err = t.neighbourProof(root, path, t.Leaves.Ceil, pre); err != nil {
		return nil, false, err
	}
	if nonex.Left == nil && nonex.Right == nil {
		return nil, false, corruptf("non-empty root %s but the leaf index is empty", root)
	}
	return &ics23.CommitmentProof{Proof: &ics23.CommitmentProof_Nonexist{Nonexist: nonex}}, false, nil
}

// neighbourProof proves the key next to the absent path on one side (seek is
// the index's Floor or Ceil), or returns nil when there is none.
func (t *Tree) neighbourProof(root Hash, path KeyPath, seek func(KeyPath) (Leaf, bool, error), pre Preimages) (*ics23.ExistenceProof, error) {
	neighbour, ok, err := seek(path)
	if err != nil || !ok {
		return nil, err
	}
	leaf, found, siblings, err := t.find(root, &neighbour.Path)
	if err != nil {
		return nil, err
	}
	if !found || leaf != neighbour {
		return nil, corruptf("leaf index holds %s, the trie does not", neighbour.Path)
	}
	return t.existenceProof(leaf, siblings, pre)
}

// existenceProof proves leaf, found below the given siblings.
func (t *Tree) existenceProof(leaf Leaf, siblings []Hash, pre Preimages) (*ics23.ExistenceProof, error) {
	key, value, err := pre.Preimage(leaf.Path)
	if err != nil {
		return nil, fmt.Errorf("trie: preimage of %s: %w", leaf.Path, err)
	}
	if PathOf(key) != leaf.Path || LeafHash(leaf.Path, ValueHash(value)) != leaf.Hash {
		return nil, corruptf("preimage of %s does not hash to its leaf", leaf.Path)
	}
	proof := &ics23.ExistenceProof{
		Key:   key,
		Value: ProofValue(value),
		Leaf:  smtLeafOp(),
		Path:  make([]*ics23.InnerOp, len(siblings)),
	}
	for d := len(siblings) - 1; d >= 0; d-- {
		op := &ics23.InnerOp{Hash: ics23.HashOp_SHA256}
		if leaf.Path.Bit(d) == 0 {
			op.Prefix = []byte{internalPrefix}
			op.Suffix = bytes.Clone(siblings[d][:])
		} else {
			op.Prefix = append([]byte{internalPrefix}, siblings[d][:]...)
		}
		proof.Path[len(siblings)-1-d] = op
	}
	return proof, nil
}

// smtLeafOp is ics23.SmtSpec's leaf operation, which the trie's leaf hash is.
func smtLeafOp() *ics23.LeafOp {
	return &ics23.LeafOp{
		Hash:         ics23.HashOp_SHA256,
		PrehashKey:   ics23.HashOp_SHA256,
		PrehashValue: ics23.HashOp_SHA256,
		Length:       ics23.LengthOp_NO_PREFIX,
		Prefix:       []byte{leafPrefix},
	}
}
