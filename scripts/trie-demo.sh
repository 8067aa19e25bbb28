#!/usr/bin/env bash
# The demo for the trie engine: build the nomtstore tool, generate a store's
# worth of key/value pairs, recompute its root, and prove present and absent
# keys, checking every proof with ICS23's SmtSpec as a light client would.
# (The node demo replaces this once the multistore lands.)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
tool="$here/bin/nomtstore"
work=$(mktemp -d "${TMPDIR:-/tmp}/nomtstore-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
pairs=${DEMO_PAIRS:-20000}

step() { printf '\n== %s\n' "$*"; }

step "building bin/nomtstore"
(cd "$here" && go build -o "$tool" ./cmd/nomtstore)

step "generating $pairs bank-balance pairs (hex key, hex value) in $work/state.txt"
awk -v n="$pairs" '
  BEGIN {
    srand(20261121)
    for (i = 0; i < 128; i++) ord[sprintf("%c", i)] = i
    for (i = 0; i < n; i++) {
      key = sprintf("balances/cosmos1acct%08d/stake", i)
      value = sprintf("%d", int(rand() * 1000000000) + 1)
      print hex(key), hex(value)
    }
  }
  function hex(s,   r, j) { r = ""; for (j = 1; j <= length(s); j++) r = r sprintf("%02x", ord[substr(s, j, 1)]); return r }
' > "$work/state.txt"
head -3 "$work/state.txt"

step "root of the store"
root=$("$tool" trie root < "$work/state.txt")
echo "root: $root"

step "the same pairs in another order give the same root"
shuf --random-source=<(yes) "$work/state.txt" > "$work/shuffled.txt"
again=$("$tool" trie root < "$work/shuffled.txt")
[[ "$again" == "$root" ]] || { echo "FAIL: root changed with input order: $again"; exit 1; }
echo "root: $again (same)"

hexof() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n'; }
valueof() { awk -v k="$1" '$1 == k { print $2; exit }' "$work/state.txt"; }

step "existence proofs for present keys, verified against the root"
for i in 0 4242 $((pairs - 1)); do
  key=$(hexof "$(printf 'balances/cosmos1acct%08d/stake' "$i")")
  value=$(valueof "$key")
  proof=$("$tool" trie prove --key "$key" < "$work/state.txt")
  printf 'key %s: proof of %d bytes; ' "$key" $((${#proof} / 2))
  "$tool" trie verify --root "$root" --key "$key" --value "$value" --proof "$proof"
done

step "non-existence proofs for absent keys, verified against the root"
for name in balances/cosmos1nobody/stake aaaa zzzz; do
  key=$(hexof "$name")
  proof=$("$tool" trie prove --key "$key" < "$work/state.txt")
  printf '%s: proof of %d bytes; ' "$name" $((${#proof} / 2))
  "$tool" trie verify --root "$root" --key "$key" --proof "$proof"
done

step "a proof in readable JSON (first lines)"
key=$(hexof "balances/cosmos1acct00004242/stake")
"$tool" trie prove --key "$key" --json < "$work/state.txt" | head -20

step "a tampered proof and a wrong value are rejected"
value=$(valueof "$key")
proof=$("$tool" trie prove --key "$key" < "$work/state.txt")
last=${proof: -1}; flipped=$([[ "$last" == 0 ]] && echo 1 || echo 0)
tampered=${proof:0:${#proof}-1}$flipped
if "$tool" trie verify --root "$root" --key "$key" --value "$value" --proof "$tampered" 2>"$work/err"; then
  echo "FAIL: a tampered proof verified"; exit 1
fi
echo "tampered proof: rejected ($(cat "$work/err"))"
if "$tool" trie verify --root "$root" --key "$key" --value 31 --proof "$proof" 2>"$work/err"; then
  echo "FAIL: a wrong value verified"; exit 1
fi
echo "wrong value:    rejected ($(cat "$work/err"))"

step "demo passed"
