package storecmd

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cosmos/cosmos-sdk/client/flags"
)

// The store commands print for a person by default and, with --output json,
// one JSON document on stdout for scripts, as the SDK's commands do. The
// JSON field names follow the nomtstore.v1.Query service's, so a script
// reads `query nomtstore status` from a running node and `nomtstore stats`
// from a stopped one alike.
const (
	OutputText = "text"
	OutputJSON = "json"
)

// AddOutputFlag adds --output (text|json).
func AddOutputFlag(cmd *cobra.Command) {
	cmd.Flags().StringP(flags.FlagOutput, "o", OutputText, "output format (text|json)")
}

// OutputFormat reads --output, refusing what is neither form before the
// command touches the store.
func OutputFormat(cmd *cobra.Command) (string, error) {
	format, err := cmd.Flags().GetString(flags.FlagOutput)
	if err != nil {
		return "", err
	}
	switch format {
	case OutputText, OutputJSON:
		return format, nil
	}
	return "", fmt.Errorf("--output %q: want text or json", format)
}

// WriteJSON writes v as one indented JSON document.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Table prints "label  value" lines with the values aligned; an indented
// label reads as a detail of the line above.
type Table struct {
	tw *tabwriter.Writer
}

// NewTable is a table on w; Flush writes it.
func NewTable(w io.Writer) *Table {
	return &Table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

// Row adds a line: label, then the formatted value.
func (t *Table) Row(label, format string, args ...any) {
	// tabwriter cannot fail on its own: write errors surface at flush.
	_, _ = fmt.Fprintf(t.tw, "%s\t%s\n", label, fmt.Sprintf(format, args...))
}

// Flush writes the lines, aligned.
func (t *Table) Flush() error { return t.tw.Flush() }

// HumanBytes is n in binary units with three significant figures, as
// `du -h` and the SDK's snapshot listing show sizes.
func HumanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, exp := float64(n), 0
	for v >= unit && exp < 6 {
		v /= unit
		exp++
	}
	suffix := []string{"", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}[exp]
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f %s", v, suffix)
	case v >= 10:
		return fmt.Sprintf("%.1f %s", v, suffix)
	}
	return fmt.Sprintf("%.2f %s", v, suffix)
}

// Count is n with thousands separators: bucket and page counts run to
// millions.
func Count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	first := len(s) % 3
	if first > 0 {
		b.WriteString(s[:first])
	}
	for i := first; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// Plural is one for 1, else many.
func Plural(n uint64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
