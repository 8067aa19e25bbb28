package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

func runTool(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// sample returns n pairs as tool input and the same data in a MemStore.
func sample(t *testing.T, n int) (string, *trie.MemStore) {
	t.Helper()
	var in strings.Builder
	var changes []trie.Change
	for i := range n {
		k, v := fmt.Appendf(nil, "bank/balances/%d", i), fmt.Appendf(nil, "%dstake", i*13+1)
		fmt.Fprintf(&in, "%x %x\n", k, v)
		changes = append(changes, trie.Change{Key: k, Value: v})
	}
	m := trie.NewMemStore(0)
	if _, err := m.Apply(changes); err != nil {
		t.Fatal(err)
	}
	return in.String(), m
}

func TestRootCommand(t *testing.T) {
	input, m := sample(t, 500)
	code, out, errOut := runTool(t, "\n"+input+"\n\n", "trie", "root")
	if code != 0 || strings.TrimSpace(out) != m.Root().String() {
		t.Fatalf("exit %d, out %q, err %q; want root %s", code, out, errOut, m.Root())
	}
	code, out, _ = runTool(t, "", "trie", "root")
	if code != 0 || strings.TrimSpace(out) != strings.Repeat("0", 64) {
		t.Fatalf("empty input: exit %d, out %q", code, out)
	}
}

func TestProveAndVerify(t *testing.T) {
	input, m := sample(t, 300)
	root := m.Root().String()
	cases := []struct {
		name, key, value string // value "" = prove absence
	}{
		{"present", hex.EncodeToString([]byte("bank/balances/42")), hex.EncodeToString([]byte("547stake"))},
		{"absent", hex.EncodeToString([]byte("bank/balances/none")), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, proof, errOut := runTool(t, input, "trie", "prove", "--key", tc.key)
			if code != 0 {
				t.Fatalf("prove: exit %d: %s", code, errOut)
			}
			args := []string{"trie", "verify", "--root", root, "--key", tc.key}
			if tc.value != "" {
				args = append(args, "--value", tc.value)
			}
			if code, out, errOut := runTool(t, proof, args...); code != 0 || !strings.HasPrefix(out, "ok:") {
				t.Fatalf("verify: exit %d, out %q, err %q", code, out, errOut)
			}
			// A flipped bit in the proof, or a wrong value, must fail with exit 1.
			bz, _ := hex.DecodeString(strings.TrimSpace(proof))
			bz[len(bz)-3] ^= 0x10
			if code, _, _ := runTool(t, hex.EncodeToString(bz), args...); code != 1 {
				t.Fatalf("tampered proof: exit %d, want 1", code)
			}
			if tc.value != "" {
				wrong := slices.Concat(args[:len(args)-1], []string{"00"})
				if code, _, _ := runTool(t, proof, wrong...); code != 1 {
					t.Fatalf("wrong value: exit %d, want 1", code)
				}
			}
			code, js, _ := runTool(t, input, "trie", "prove", "--key", tc.key, "--json")
			var decoded proofJSON
			if code != 0 || json.Unmarshal([]byte(js), &decoded) != nil || decoded.Root != root || decoded.Exists != (tc.value != "") {
				t.Fatalf("--json: exit %d, %q", code, js)
			}
		})
	}
}

func TestBadInputExitsTwo(t *testing.T) {
	cases := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"odd hex", "6b3 76\n", []string{"trie", "root"}, "line 1: key: encoding/hex: odd length"},
		{"not hex", "6b zz\n", []string{"trie", "root"}, "line 1: value: encoding/hex: invalid byte"},
		{"empty value", "6b31 7631\n6b32 0x\n", []string{"trie", "root"}, "line 2: empty value"},
		{"empty key", "0x 76\n", []string{"trie", "root"}, "line 1: empty key"},
		{"one field", "6b31\n", []string{"trie", "root"}, "line 1: want \"hexkey hexvalue\", got 1 fields"},
		{"duplicate key", "6b31 76\n6b32 76\n6b31 77\n", []string{"trie", "root"}, "line 3: duplicate key 6b31 (first on line 1)"},
		{"prove empty input", "", []string{"trie", "prove", "--key", "6b31"}, "no key/value pairs on stdin"},
		{"prove without key", "6b31 76\n", []string{"trie", "prove"}, "--key is required"},
		{"prove odd key", "6b31 76\n", []string{"trie", "prove", "--key", "abc"}, "--key: encoding/hex: odd length"},
		{"unknown flag", "", []string{"trie", "root", "--bogus"}, "unknown flag: --bogus"},
		{"unknown command", "", []string{"trie", "rooot"}, `unknown command "rooot"`},
		{"no subcommand", "", []string{"trie"}, "needs a subcommand"},
		{"verify short root", "00", []string{"trie", "verify", "--root", "abcd", "--key", "6b"}, "--root must be 32 bytes"},
		{"verify garbage proof", "", []string{"trie", "verify", "--root", strings.Repeat("0", 64), "--key", "6b", "--proof", "ffff"}, "not a protobuf"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runTool(t, tc.stdin, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", code, errOut, tc.want)
			}
			if out != "" {
				t.Fatalf("printed %q on stdout despite the error", out)
			}
		})
	}
}

// TestOutputJSON: each trie command's --output json is one document, and
// text stays the default.
func TestOutputJSON(t *testing.T) {
	input, m := sample(t, 100)
	root := m.Root().String()

	code, out, errOut := runTool(t, input, "trie", "root", "--output", "json")
	var r rootJSON
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Root != root || r.Keys != 100 {
		t.Fatalf("root -o json: exit %d, %q, %q", code, out, errOut)
	}

	key := hex.EncodeToString([]byte("bank/balances/7"))
	value := hex.EncodeToString([]byte("92stake"))
	code, out, _ = runTool(t, input, "trie", "prove", "--key", key, "-o", "json")
	var p proofJSON
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.Root != root || !p.Exists || p.Exist == nil {
		t.Fatalf("prove -o json: exit %d, %q", code, out)
	}
	_, proof, _ := runTool(t, input, "trie", "prove", "--key", key)

	code, out, _ = runTool(t, proof, "trie", "verify", "--root", root, "--key", key, "--value", value, "-o", "json")
	var v verifyJSON
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || !v.OK || !v.Exists || v.Value != value {
		t.Fatalf("verify -o json: exit %d, %q", code, out)
	}
	// A proof that does not verify: ok false on stdout, exit 1.
	code, out, _ = runTool(t, proof, "trie", "verify", "--root", root, "--key", key, "--value", "00", "-o", "json")
	v = verifyJSON{}
	if code != 1 || json.Unmarshal([]byte(out), &v) != nil || v.OK {
		t.Fatalf("verify -o json of a wrong value: exit %d, %q", code, out)
	}

	if code, _, errOut := runTool(t, input, "trie", "root", "-o", "yaml"); code != 2 || !strings.Contains(errOut, `--output "yaml": want text or json`) {
		t.Fatalf("-o yaml: exit %d, %q", code, errOut)
	}
}
