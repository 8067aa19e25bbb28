# nomtstore: `make demo` runs the main job, `make test` everything CI checks.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
# Short fuzzing and benchmark smoke runs belong in CI; long ones do not.
FUZZTIME ?= 15s

BUF_VERSION := 1.50.0

.PHONY: proto all build test test-long docs-check unit race crossline demo-v054 fuzz-smoke bench-smoke fmt-check vet lint demo bench bench-small bench-large crash-long fuzz clean

all: build

build:
	$(GO) build -o $(BIN)/nomtstore ./cmd/nomtstore
	$(GO) build -o $(BIN)/nomtsimd ./cmd/nomtsimd

# Everything CI runs (.ci/run calls exactly this), for both modules: the
# root (SDK v0.53) and storev2/ (SDK v0.54+), which share the build cache.
test: fmt-check vet lint docs-check unit race crossline fuzz-smoke bench-smoke

# The docs stay true to the repository: relative links resolve, and
# operators.md documents every app.toml key and metric (docs/docs_test.go).
docs-check:
	$(GO) test -count=1 ./docs

unit:
	$(GO) test -count=1 ./...
	cd storev2 && $(GO) test -count=1 ./...

# The race detector over the short variants: parallel hashing shares pages
# and the leaf index across goroutines. storev2's app tests run alone: the
# SDK's network.New gives a three-validator network a fixed 5 s for its
# first block, which the race detector on two cores, beside another
# package's tests, can miss.
race:
	$(GO) test -count=1 -race -short -timeout 30m ./...
	cd storev2 && $(GO) test -count=1 -race -short -timeout 30m $$($(GO) list ./... | grep -v /app_test$$)
	cd storev2 && $(GO) test -count=1 -race -short -timeout 30m ./app_test

# A store directory written by one SDK line opens on the other: each line
# checks what the other left and writes on top of it (internal/crossline).
CROSSLINE_DIR := $(BIN)/crossline
crossline:
	rm -rf $(CROSSLINE_DIR) && mkdir -p $(CROSSLINE_DIR)
	NOMTSTORE_CROSSLINE_DIR=$(CROSSLINE_DIR) $(GO) test -count=1 -run '^TestCrossLine$$' ./multistore
	cd storev2 && NOMTSTORE_CROSSLINE_DIR=$(CROSSLINE_DIR) $(GO) test -count=1 -run '^TestCrossLine$$' ./multistore
	NOMTSTORE_CROSSLINE_DIR=$(CROSSLINE_DIR) $(GO) test -count=1 -run '^TestCrossLine$$' ./multistore

fuzz-smoke:
	$(GO) test -count=1 -run '^$$' -fuzz '^FuzzUpdate$$' -fuzztime $(FUZZTIME) ./commitment/trie
	$(GO) test -count=1 -run '^$$' -fuzz '^FuzzRestoreItem$$' -fuzztime $(FUZZTIME) ./cms

# Every Go benchmark once (-short keeps them small), and the harness of
# docs/benchmarks.md through every workload and store at a small N
# (W4 at shallow depths: its 1,000 history blocks per store are for the
# real sizes).
bench-smoke:
	$(GO) test -count=1 -short -run '^$$' -bench . -benchtime 1x ./...
	$(GO) run ./cmd/nomtstore bench --n 20000 --t 200 --blocks 5 --w3-blocks 20 --w4-blocks 5 --query-depths 10,100 --quiet 200ms --out $(BIN)/bench-smoke

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	cd storev2 && $(GO) vet ./...

$(GOLANGCI_LINT):
	mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $@

lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...
	cd storev2 && $(GOLANGCI_LINT) run --config ../.golangci.yml ./...

# A one-validator simapp chain on nomtstore: transfers, proofs against the
# app hash, restart, pruning (scripts/demo.sh). The earlier trie-only demo
# is scripts/trie-demo.sh.
demo:
	bash scripts/demo.sh

# The same demo on the SDK v0.54 node (storev2/cmd/nomtsimd).
demo-v054:
	DEMO_LINE=v0.54 bash scripts/demo.sh

# docs/benchmarks.md's workloads against nomtstore, IAVL v1 and memiavl,
# each store kind in its own process: a markdown table with ratios, JSON
# and a PNG chart in bench-results/. bench is the quick profile (W1 and W4, N = 100k, a few
# minutes on 2 cores); bench-small runs every workload at N = 1M, then the
# trie alone; bench-large at N = 10M.
bench:
	$(GO) run ./cmd/nomtstore bench --size quick --out bench-results

bench-small:
	$(GO) run ./cmd/nomtstore bench --size small --out bench-results
	$(GO) test -run '^$$' -bench 'NodeHash|Update' -benchmem -count 3 ./commitment/trie

bench-large:
	$(GO) run ./cmd/nomtstore bench --size large --out bench-results

# The long power-loss runs: 6,000 simulated power cuts (a file system that
# drops or tears every unsynced write, make test runs 300), 1,000 cuts of a
# bulk load (make test: 40) and 200 SIGKILLs of a restoring node (make
# test: 12), then the soak (commits, pruning, readers and checks at once)
# for five minutes under the race detector (make test runs 5 s, and 2 s with
# -race), and one block of 5M writes against the same keys in 50 blocks. The
# SIGKILL test of commits is crash-long.
test-long:
	$(GO) test -count=1 -run '^TestPowerCut$$' -timeout 4h -v ./commitment -power-cuts 6000
	$(GO) test -count=1 -run '^TestBulkLoadPowerCut$$' -timeout 1h -v ./commitment -bulk-cuts 1000
	$(GO) test -count=1 -run '^TestRestoreKilled$$' -timeout 1h -v ./multistore -restore-kills 200
	$(GO) test -count=1 -race -run '^TestSoak$$' -timeout 1h -v ./commitment -soak 5m
	NOMTSTORE_HUGE_BLOCK=5000000 $(GO) test -count=1 -run '^TestHugeBlock$$' -timeout 1h -v ./commitment
	NOMTSTORE_MIGRATE_KILLS=100 $(GO) test -count=1 -run '^TestMigrateKilled$$' -timeout 1h -v ./app_test
	cd storev2 && NOMTSTORE_MIGRATE_KILLS=100 $(GO) test -count=1 -run '^TestMigrateKilled$$' -timeout 1h -v ./app_test
	$(MAKE) fuzz

# The long crash test: 10,000 SIGKILLs of a committing process.
crash-long:
	$(GO) test -count=1 -run '^TestCrashRecovery$$' -timeout 6h ./commitment -long

# A long fuzzing run, for a developer's machine.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzUpdate$$' -fuzztime 10m ./commitment/trie
	$(GO) test -run '^$$' -fuzz '^FuzzRestoreItem$$' -fuzztime 10m ./cms

clean:
	rm -rf $(BIN)

# Regenerates the Go of proto/ (committed): buf from npm (@bufbuild/buf),
# the gogoproto and grpc-gateway plugins from the module proxy, and the
# imported protos copied from their Go modules.
THIRD_PARTY := build/third_party/proto
proto:
	mkdir -p $(BIN) $(THIRD_PARTY)/gogoproto $(THIRD_PARTY)/google/api build/buf
	cp "$$($(GO) list -m -f '{{.Dir}}' github.com/cosmos/gogoproto)/gogoproto/gogo.proto" $(THIRD_PARTY)/gogoproto/
	gw="$$($(GO) list -m -f '{{.Dir}}' github.com/grpc-ecosystem/grpc-gateway)/third_party/googleapis/google/api"; \
		cp "$$gw/annotations.proto" "$$gw/http.proto" $(THIRD_PARTY)/google/api/
	chmod -R u+w $(THIRD_PARTY)
	GOBIN=$(BIN) $(GO) install github.com/cosmos/gogoproto/protoc-gen-gocosmos
	GOBIN=$(BIN) $(GO) install github.com/grpc-ecosystem/grpc-gateway/protoc-gen-grpc-gateway@v1.16.0
	npm install --silent --no-audit --no-fund --prefix build/buf @bufbuild/buf@$(BUF_VERSION)
	build/buf/node_modules/.bin/buf lint proto
	rm -rf build/gen
	build/buf/node_modules/.bin/buf generate --template proto/buf.gen.yaml
	cp build/gen/github.com/nomtstore/nomtstore/proto/nomtstore/v1/*.pb.go proto/nomtstore/v1/
