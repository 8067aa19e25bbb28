package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	ics23 "github.com/cosmos/ics23/go"
	"github.com/spf13/cobra"

	"github.com/nomtstore/nomtstore/commitment/trie"
)

const pairsHelp = `Input is read from stdin: one "hexkey hexvalue" pair per line (an optional
0x prefix is accepted, blank lines are skipped). Keys must be distinct and
values non-empty, as the SDK requires.`

func newTrieCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trie",
		Short: "Recompute store roots and ICS23 proofs from key/value pairs",
	}
	cmd.AddCommand(newTrieRootCommand(), newTrieProveCommand(), newTrieVerifyCommand())
	requireSubcommand(cmd)
	return cmd
}

func newTrieRootCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "root",
		Short: "Print the root hash of the key/value pairs on stdin",
		Long:  "Print, as hex, the root of the store holding the key/value pairs on stdin.\n\n" + pairsHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := jsonOutput(cmd)
			if err != nil {
				return err
			}
			store, err := loadStore(cmd.InOrStdin())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rootJSON{Root: store.Root().String(), Keys: store.Len()})
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), store.Root())
			return err
		},
	}
	addOutputFlag(cmd)
	return cmd
}

// rootJSON is `trie root --output json`.
type rootJSON struct {
	Root string `json:"root"`
	Keys int    `json:"keys"`
}

func newTrieProveCommand() *cobra.Command {
	var keyHex string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "prove --key HEX",
		Short: "Print an ICS23 proof for a key of the store on stdin",
		Long: `Print the ICS23 CommitmentProof (SmtSpec) for --key in the store holding the
key/value pairs on stdin: an existence proof when the key is present, a
non-existence proof otherwise. The output is the hex of the protobuf
encoding, or with --output json a readable form with every byte string in hex.

` + pairsHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			outJSON, err := jsonOutput(cmd)
			if err != nil {
				return err
			}
			asJSON = asJSON || outJSON
			key, err := decodeHex("--key", keyHex)
			if err != nil {
				return err
			}
			if len(key) == 0 {
				return errors.New("--key is required and must not be empty")
			}
			store, err := loadStore(cmd.InOrStdin())
			if err != nil {
				return err
			}
			if store.Len() == 0 {
				return errors.New("no key/value pairs on stdin: an empty store has no proofs")
			}
			proof, exists, err := store.Prove(key)
			if err != nil {
				return failed("proving %x: %v", key, err)
			}
			if asJSON {
				return writeProofJSON(cmd.OutOrStdout(), store.Root(), key, exists, proof)
			}
			bz, err := proof.Marshal()
			if err != nil {
				return failed("encoding proof: %v", err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), hex.EncodeToString(bz))
			return err
		},
	}
	cmd.Flags().StringVar(&keyHex, "key", "", "the key to prove, in hex")
	// --json came before --output; scripts that use it keep working.
	cmd.Flags().BoolVar(&asJSON, "json", false, "the same as --output json")
	_ = cmd.Flags().MarkHidden("json")
	addOutputFlag(cmd)
	return cmd
}

func newTrieVerifyCommand() *cobra.Command {
	var rootHex, keyHex, valueHex, proofHex string
	cmd := &cobra.Command{
		Use:   "verify --root HEX --key HEX [--value HEX] [--proof HEX]",
		Short: "Verify an ICS23 proof against a root with SmtSpec",
		Long: `Verify a hex-encoded ICS23 CommitmentProof (from --proof, or stdin) against
--root with ics23.SmtSpec, exactly as a light client would: membership of
--key with --value when --value is given, non-membership of --key otherwise.
Exits 0 when the proof verifies and 1 when it does not; with --output json,
stdout has {"ok": ...} either way.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := jsonOutput(cmd)
			if err != nil {
				return err
			}
			root, err := decodeHex("--root", rootHex)
			if err != nil {
				return err
			}
			if len(root) != 32 {
				return fmt.Errorf("--root must be 32 bytes of hex, got %d bytes", len(root))
			}
			key, err := decodeHex("--key", keyHex)
			if err != nil {
				return err
			}
			if len(key) == 0 {
				return errors.New("--key is required and must not be empty")
			}
			value, err := decodeHex("--value", valueHex)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("proof") {
				in, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return fmt.Errorf("reading proof from stdin: %w", err)
				}
				proofHex = strings.TrimSpace(string(in))
			}
			bz, err := decodeHex("proof", proofHex)
			if err != nil {
				return err
			}
			var proof ics23.CommitmentProof
			if err := proof.Unmarshal(bz); err != nil {
				return fmt.Errorf("proof is not a protobuf ics23.CommitmentProof: %w", err)
			}
			if proof.Proof == nil {
				return errors.New("proof is not a protobuf ics23.CommitmentProof: it holds no proof")
			}
			res := verifyJSON{Root: hex.EncodeToString(root), Key: hex.EncodeToString(key), Exists: cmd.Flags().Changed("value")}
			var failure error
			if res.Exists {
				res.Value = hex.EncodeToString(value)
				res.OK = verifySafely(func() bool { return ics23.VerifyMembership(ics23.SmtSpec, root, &proof, key, value) })
				if !res.OK {
					failure = failed("membership proof of key %x with value %x does not verify against root %x", key, value, root)
				}
			} else {
				res.OK = verifySafely(func() bool { return ics23.VerifyNonMembership(ics23.SmtSpec, root, &proof, key) })
				if !res.OK {
					failure = failed("non-membership proof of key %x does not verify against root %x", key, root)
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := writeJSON(out, res); err != nil {
					return err
				}
				return failure
			}
			if failure != nil {
				return failure
			}
			if res.Exists {
				_, err = fmt.Fprintf(out, "ok: key %x has value %x under root %x\n", key, value, root)
				return err
			}
			_, err = fmt.Fprintf(out, "ok: key %x is absent under root %x\n", key, root)
			return err
		},
	}
	cmd.Flags().StringVar(&rootHex, "root", "", "the root hash, in hex")
	cmd.Flags().StringVar(&keyHex, "key", "", "the key, in hex")
	cmd.Flags().StringVar(&valueHex, "value", "", "the value, in hex (omit to check absence)")
	cmd.Flags().StringVar(&proofHex, "proof", "", "the proof, in hex (default: read from stdin)")
	addOutputFlag(cmd)
	return cmd
}

// verifySafely runs an ICS23 check; ics23 panics on some malformed proofs,
// which for this tool is just a proof that does not verify.
func verifySafely(check func() bool) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return check()
}

func decodeHex(what, s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}

// maxLine bounds one input line: a key and a value of the SDK's largest
// sizes, in hex, with room to spare.
const maxLine = 64 << 20

// loadStore reads "hexkey hexvalue" lines into an in-memory trie.
func loadStore(r io.Reader) (*trie.MemStore, error) {
	var changes []trie.Change
	firstLine := map[string]int{}
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64<<10), maxLine)
	for line := 1; scanner.Scan(); line++ {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: want \"hexkey hexvalue\", got %d fields", line, len(fields))
		}
		key, err := decodeHex(fmt.Sprintf("line %d: key", line), fields[0])
		if err != nil {
			return nil, err
		}
		value, err := decodeHex(fmt.Sprintf("line %d: value", line), fields[1])
		if err != nil {
			return nil, err
		}
		switch {
		case len(key) == 0:
			return nil, fmt.Errorf("line %d: empty key", line)
		case len(value) == 0:
			return nil, fmt.Errorf("line %d: empty value for key %x (the SDK stores no empty values)", line, key)
		}
		if first, dup := firstLine[string(key)]; dup {
			return nil, fmt.Errorf("line %d: duplicate key %x (first on line %d)", line, key, first)
		}
		firstLine[string(key)] = line
		changes = append(changes, trie.Change{Key: key, Value: value})
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("reading stdin: %w", err)
	}
	store := trie.NewMemStore(0)
	if _, err := store.Apply(changes); err != nil {
		return nil, failed("building the trie: %v", err)
	}
	return store, nil
}

// verifyJSON is `trie verify --output json`.
type verifyJSON struct {
	OK     bool   `json:"ok"`
	Root   string `json:"root"`
	Key    string `json:"key"`
	Exists bool   `json:"exists"` // membership was checked (--value given)
	Value  string `json:"value,omitempty"`
}

// Each command prints text for a person or, with --output json, one JSON
// document for scripts, as the SDK's commands do.
func addOutputFlag(cmd *cobra.Command) {
	cmd.Flags().StringP("output", "o", "text", "output format (text|json)")
}

func jsonOutput(cmd *cobra.Command) (bool, error) {
	format, err := cmd.Flags().GetString("output")
	if err != nil {
		return false, err
	}
	switch format {
	case "text":
		return false, nil
	case "json":
		return true, nil
	}
	return false, fmt.Errorf("--output %q: want text or json", format)
}

func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return failed("encoding JSON: %v", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// The JSON form of a proof: the protobuf fields, byte strings in hex.
type (
	proofJSON struct {
		Root     string        `json:"root"`
		Key      string        `json:"key"`
		Exists   bool          `json:"exists"`
		Exist    *existJSON    `json:"exist,omitempty"`
		Nonexist *nonexistJSON `json:"nonexist,omitempty"`
	}
	nonexistJSON struct {
		Key   string     `json:"key"`
		Left  *existJSON `json:"left"`
		Right *existJSON `json:"right"`
	}
	existJSON struct {
		Key   string      `json:"key"`
		Value string      `json:"value"`
		Leaf  leafJSON    `json:"leaf"`
		Path  []innerJSON `json:"path"`
	}
	leafJSON struct {
		Hash         string `json:"hash"`
		PrehashKey   string `json:"prehash_key"`
		PrehashValue string `json:"prehash_value"`
		Length       string `json:"length"`
		Prefix       string `json:"prefix"`
	}
	innerJSON struct {
		Hash   string `json:"hash"`
		Prefix string `json:"prefix"`
		Suffix string `json:"suffix"`
	}
)

func toExistJSON(p *ics23.ExistenceProof) *existJSON {
	if p == nil {
		return nil
	}
	e := &existJSON{
		Key:   hex.EncodeToString(p.Key),
		Value: hex.EncodeToString(p.Value),
		Leaf: leafJSON{
			Hash:         p.Leaf.Hash.String(),
			PrehashKey:   p.Leaf.PrehashKey.String(),
			PrehashValue: p.Leaf.PrehashValue.String(),
			Length:       p.Leaf.Length.String(),
			Prefix:       hex.EncodeToString(p.Leaf.Prefix),
		},
		Path: make([]innerJSON, len(p.Path)),
	}
	for i, op := range p.Path {
		e.Path[i] = innerJSON{Hash: op.Hash.String(), Prefix: hex.EncodeToString(op.Prefix), Suffix: hex.EncodeToString(op.Suffix)}
	}
	return e
}

func writeProofJSON(w io.Writer, root trie.Hash, key []byte, exists bool, proof *ics23.CommitmentProof) error {
	out := proofJSON{Root: root.String(), Key: hex.EncodeToString(key), Exists: exists}
	if ex := proof.GetExist(); ex != nil {
		out.Exist = toExistJSON(ex)
	}
	if ne := proof.GetNonexist(); ne != nil {
		out.Nonexist = &nonexistJSON{Key: hex.EncodeToString(ne.Key), Left: toExistJSON(ne.Left), Right: toExistJSON(ne.Right)}
	}
	return writeJSON(w, out)
}
