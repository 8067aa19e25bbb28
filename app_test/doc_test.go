// Package app_test runs the ibc-go v10 simapp on nomtstore: a deterministic
// in-process chain driven through ABCI (restart, proofs, concurrent
// queries) and the SDK's in-process CometBFT network.
package app_test
