package multistore

import (
	"cosmossdk.io/store/types"
)

// Query answers /<store>/key (with prove: an ics23:smt proof of the key in
// the store, then rootmulti's ics23:simple proof of the store in the app
// hash) and /<store>/subspace, at req.Height (0: the latest but one, as
// IAVL answers, so that the proof matches a header already out).
func (s *Store) Query(req *types.RequestQuery) (*types.ResponseQuery, error) {
	defer s.storeMetrics().MeasureSince("store", "nomtstore", "query")
	res, err := s.core.Query(requestFromSDK(req))
	if err != nil {
		return &types.ResponseQuery{}, errorToSDK(err)
	}
	return responseToSDK(res), nil
}
