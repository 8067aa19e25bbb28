// Package migrate moves a chain's state from IAVL (the SDK's rootmulti
// store in the node's application.db) into a nomtstore directory at one
// height, for a chain switching stores at an upgrade height.
//
// The state goes through the engine's bulk load, store by store in key
// order, as IAVL's fast index gives it; the version's commit record is
// IAVL's commit info, so the migrated node answers the app hash CometBFT
// recorded for that height and the chain's next block commits nomtstore's
// roots. Proofs at the migrated height stay IAVL proofs: the multistore
// answers them from the IAVL data, which the migration never modifies
// (docs/migration.md).
package migrate
