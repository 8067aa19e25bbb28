// Package app_test runs the ibc-go v11 simapp (SDK v0.54, store/v2) on
// nomtstore: a deterministic in-process chain driven through ABCI
// (restarts, proofs that ibc-go verifies, concurrent queries).
package app_test
