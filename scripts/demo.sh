#!/usr/bin/env bash
# make demo: a one-validator simapp chain on nomtstore, end to end.
# Builds nomtsimd, creates a localnet in a temp home, starts it, sends bank
# transfers, proves a balance at the latest and an older height against the
# block app hash, restarts the node, shows pruning at work and the store's
# metrics, stops cleanly.
#
# DEMO_LINE=v0.54 runs the same demo on the SDK v0.54 node (storev2/, the
# ibc-go v11 simapp on store/v2); make demo-v054 does.
#
# DEMO_HOLD_SECONDS=N keeps the node running N more seconds at the end,
# sending a transfer every few seconds, so that a Prometheus can scrape its
# metrics (scripts/dashboard-screenshot.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
LINE=${DEMO_LINE:-v0.53}
case "$LINE" in
v0.53) B="$PWD/bin/nomtsimd"; SRC=.; WHAT="simapp of ibc-go v10 (SDK v0.53)" ;;
v0.54) B="$PWD/bin/nomtsimd-v054"; SRC=storev2; WHAT="simapp of ibc-go v11 (SDK v0.54, store/v2)" ;;
*) echo "DEMO_LINE must be v0.53 or v0.54, not $LINE"; exit 2 ;;
esac
HOME_DIR="$(mktemp -d /tmp/nomtstore-demo.XXXXXX)"
CHAIN=nomt-demo
KR=(--keyring-backend test --home "$HOME_DIR")
RPC_PORT=${DEMO_RPC_PORT:-36657}
NODE="tcp://127.0.0.1:$RPC_PORT"
LOG="$HOME_DIR/node.log"
PID=""

cleanup() {
	if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; fi
	if [[ "${KEEP_DEMO_HOME:-}" == "" ]]; then rm -rf "$HOME_DIR"; else echo "home kept in $HOME_DIR"; fi
}
trap cleanup EXIT

say "building $(basename "$B") ($WHAT, with nomtstore as its CommitMultiStore)"
(cd "$SRC" && go build -o "$B" ./cmd/nomtsimd)

say "creating a one-validator localnet in $HOME_DIR"
"$B" init demo --chain-id "$CHAIN" --home "$HOME_DIR" >/dev/null 2>&1
"$B" keys add alice "${KR[@]}" >/dev/null 2>&1
"$B" keys add bob "${KR[@]}" >/dev/null 2>&1
ALICE=$("$B" keys show alice -a "${KR[@]}")
BOB=$("$B" keys show bob -a "${KR[@]}")
echo "alice $ALICE"
echo "bob   $BOB"
"$B" genesis add-genesis-account "$ALICE" 1000000000stake "${KR[@]}"
"$B" genesis gentx alice 100000000stake --chain-id "$CHAIN" "${KR[@]}" >/dev/null 2>&1
"$B" genesis collect-gentxs --home "$HOME_DIR" >/dev/null 2>&1
# Fast blocks, and pruning that shows within a minute: keep 20, every 10.
sed -i 's/^timeout_commit = .*/timeout_commit = "300ms"/' "$HOME_DIR/config/config.toml"
sed -i 's/^pruning = .*/pruning = "custom"/; s/^pruning-keep-recent = .*/pruning-keep-recent = "20"/; s/^pruning-interval = .*/pruning-interval = "10"/' "$HOME_DIR/config/app.toml"
# Telemetry on: the API server then serves Prometheus metrics.
sed -i '/^\[telemetry\]/,/^\[/ s/^enabled = .*/enabled = true/; s/^prometheus-retention-time = .*/prometheus-retention-time = 600/' "$HOME_DIR/config/app.toml"
echo "app.toml:"; grep -E '^pruning|^\[nomtstore\]|^dir|^page-cache-pages|^prometheus-retention-time' "$HOME_DIR/config/app.toml" | sed 's/^/  /'

start_node() {
	"$B" start --home "$HOME_DIR" --rpc.laddr "$NODE" --p2p.laddr tcp://127.0.0.1:$((RPC_PORT + 1)) \
		--grpc.address 127.0.0.1:$((RPC_PORT + 2)) --api.enable=true --api.address tcp://127.0.0.1:$((RPC_PORT + 3)) \
		--grpc-web.enable=false >>"$LOG" 2>&1 &
	PID=$!
}
height() { curl -s "http://127.0.0.1:$RPC_PORT/status" | sed -n 's/.*"latest_block_height":"\([0-9]*\)".*/\1/p'; }
wait_height() {
	local want=$1 h=0
	for _ in $(seq 1 600); do
		h=$(height || true)
		if [[ -n "$h" && "$h" -ge "$want" ]]; then return 0; fi
		if ! kill -0 "$PID" 2>/dev/null; then echo "node died; log tail:"; tail -30 "$LOG"; exit 1; fi
		sleep 0.2
	done
	echo "timed out waiting for height $want (at ${h:-?})"; tail -30 "$LOG"; exit 1
}

say "starting the node"
start_node
wait_height 3
grep -m1 'nomtstore installed' "$LOG" | sed 's/^/  log: /'
echo "height $(height)"

say "sending 3 bank transfers alice -> bob"
for amount in 1000 2000 3000; do
	"$B" tx bank send alice "$BOB" "${amount}stake" --chain-id "$CHAIN" "${KR[@]}" --node "$NODE" -y -o json \
		| sed -n 's/.*"txhash":"\([0-9A-F]*\)".*/  tx \1/p'
	wait_height $(($(height) + 2))
done
H_FIRST=$(height)
wait_height $((H_FIRST + 2))
if [[ "$LINE" == v0.53 ]]; then
	# (The v0.54 node has no AutoCLI query commands: the prove below reads the balance.)
	echo "bob's balance:"; "$B" query bank balances "$BOB" --node "$NODE" -o json | sed 's/^/  /'
fi

say "proving bob's balance at the latest height but one, against the next header's app hash"
"$B" nomtstore prove --balance "$BOB:stake" --node "$NODE" | sed 's/^/  /'
OLD=$((H_FIRST - 3))
say "proving bob's balance at older height $OLD (before the later transfers)"
"$B" nomtstore prove --balance "$BOB:stake" --height "$OLD" --node "$NODE" | sed 's/^/  /'
say "proving a key that does not exist (carol's balance): absence proof"
CAROL=$("$B" keys add carol "${KR[@]}" --output json 2>/dev/null | sed -n 's/.*"address":"\([a-z0-9]*\)".*/\1/p')
"$B" nomtstore prove --balance "$CAROL:stake" --node "$NODE" | sed 's/^/  /'

say "restarting the node"
BEFORE=$(height)
kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
echo "stopped at height $BEFORE; store on disk:"
"$B" nomtstore stats --home "$HOME_DIR" | sed 's/^/  /'
start_node
wait_height $((BEFORE + 3))
echo "resumed: height $(height) > $BEFORE"

say "pruning (custom: keep 20, every 10): waiting for height 45"
wait_height 45
if out=$("$B" nomtstore prove --balance "$BOB:stake" --height 2 --node "$NODE" 2>&1); then
	echo "height 2 is still readable: pruning did not run"; exit 1
fi
echo "  query at height 2: ${out##*: }" | cut -c1-160
"$B" nomtstore prove --balance "$BOB:stake" --height $(($(height) - 10)) --node "$NODE" | grep '^verified' | sed 's/^verified */  a recent height: verified, /'

say "the store's own view: query nomtstore status (CLI) and GET /nomtstore/v1/status (REST)"
"$B" query nomtstore status --node "$NODE" | grep -E '^(latest_version|earliest_version)|^  (strategy|keep_recent|runs|pruned_versions|load_factor):' | sed 's/^/  /'
curl -s "http://127.0.0.1:$((RPC_PORT + 3))/nomtstore/v1/status" | cut -c1-160 | sed 's/^/  REST: /'; echo ...

API="http://127.0.0.1:$((RPC_PORT + 3))"
say "the store's metrics: GET $API/metrics?format=prometheus (app.toml [telemetry])"
curl -s "$API/metrics?format=prometheus" | grep -E '^nomtstore_(commits|versions_retained|pruning_lag|pruning_runs|table_load_factor|commit_total_ms\{quantile="0.5"\}) ' | sed 's/^/  /'

if [[ "${DEMO_HOLD_SECONDS:-0}" -gt 0 ]]; then
	say "holding the node for $DEMO_HOLD_SECONDS s (a transfer every 5 s); metrics at $API/metrics?format=prometheus"
	end=$((SECONDS + DEMO_HOLD_SECONDS))
	while ((SECONDS < end)); do
		"$B" tx bank send alice "$BOB" 1stake --chain-id "$CHAIN" "${KR[@]}" --node "$NODE" -y -o json >/dev/null 2>&1 || true
		sleep 5
	done
fi

say "stopping the node"
FINAL=$(height)
kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
PID=""
"$B" nomtstore stats --home "$HOME_DIR" | sed -n 1,3p | sed 's/^/  /'
"$B" nomtstore verify --home "$HOME_DIR" | sed 's/^/  /'
say "demo done: $FINAL blocks on nomtstore ($LINE)"
