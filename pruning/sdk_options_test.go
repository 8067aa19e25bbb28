package pruning

import "cosmossdk.io/store/pruning/types"

// fromSDK is the conversion the v0.53 adapter makes (multistore.SetPruning):
// the tests state their cases as the SDK's options, to compare with the
// SDK's own pruning manager.
func fromSDK(o types.PruningOptions) Options {
	return Options{Nothing: o.GetPruningStrategy() == types.PruningNothing, KeepRecent: o.KeepRecent, Interval: o.Interval}
}
