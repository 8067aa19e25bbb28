module github.com/nomtstore/nomtstore

go 1.26.0

require (
	github.com/celestiaorg/smt v0.3.0
	github.com/cosmos/ics23/go v0.11.0
	github.com/google/btree v1.1.3
	github.com/spf13/cobra v1.10.1
)

require (
	github.com/cosmos/gogoproto v1.7.2 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	golang.org/x/crypto v0.26.0 // indirect
	golang.org/x/sys v0.34.0 // indirect
	google.golang.org/protobuf v1.36.10 // indirect
)
