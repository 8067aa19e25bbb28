// Package multistore is the CommitMultiStore of store/v2 v2.0.0
// (github.com/cosmos/cosmos-sdk/store/v2, SDK v0.54+) over the nomtstore
// engine. It is a thin adapter over the SDK-free core the v0.53 store
// shares (github.com/nomtstore/nomtstore/cms): it converts store/v2's
// types and wires store/v2's own packages (transient, memory, object and
// DB stores, cache multistores, listeners, the inter-block cache). A
// store directory written through either line opens through the other.
package multistore
