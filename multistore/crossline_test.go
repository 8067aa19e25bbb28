package multistore

import (
	"testing"

	"cosmossdk.io/log"
	"cosmossdk.io/store/types"
	"github.com/cometbft/cometbft/crypto/merkle"

	"github.com/nomtstore/nomtstore/internal/crossline"
)

// TestCrossLine opens the store directories the v0.54 line (module
// storev2) wrote, and writes one for it (internal/crossline; `make test`
// runs both lines in turn).
func TestCrossLine(t *testing.T) {
	crossline.Run(t, crossline.Line{Name: "v0.53", Open: openCrossLine})
}

type crossLineStore struct {
	*Store
	keys map[string]types.StoreKey
}

func openCrossLine(dir string) (crossline.Store, error) {
	s, err := New(dir, log.NewNopLogger(), Options{})
	if err != nil {
		return nil, err
	}
	c := &crossLineStore{Store: s, keys: map[string]types.StoreKey{}}
	for _, name := range crossline.Stores {
		c.keys[name] = types.NewKVStoreKey(name)
		s.MountStoreWithDB(c.keys[name], types.StoreTypeIAVL, nil)
	}
	if err := s.LoadLatestVersion(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return c, nil
}

func (c *crossLineStore) Set(store string, key, value []byte) {
	if value == nil {
		c.GetKVStore(c.keys[store]).Delete(key)
		return
	}
	c.GetKVStore(c.keys[store]).Set(key, value)
}

func (c *crossLineStore) Get(store string, key []byte) []byte {
	return c.GetKVStore(c.keys[store]).Get(key)
}

func (c *crossLineStore) Commit() (int64, []byte) {
	id := c.Store.Commit()
	return id.Version, id.Hash
}

func (c *crossLineStore) LastCommit() (int64, []byte) {
	id := c.LastCommitID()
	return id.Version, id.Hash
}

func (c *crossLineStore) VerifyProof(store string, key, value []byte, version int64, appHash []byte) error {
	res, err := c.Query(&types.RequestQuery{Path: "/" + store + "/key", Data: key, Height: version, Prove: true})
	if err != nil {
		return err
	}
	keyPath := merkle.KeyPath{}.AppendKey([]byte(store), merkle.KeyEncodingURL).AppendKey(key, merkle.KeyEncodingURL).String()
	if value == nil {
		return proofRuntime().VerifyAbsence(res.ProofOps, appHash, keyPath)
	}
	return proofRuntime().VerifyValue(res.ProofOps, appHash, keyPath, value)
}
