package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Table is one block of a readable answer.
type Table struct {
	Title   string
	Columns []string
	Rows    [][]string
	Notes   []string // lines printed under the table
}

// Result is a subcommand's answer: JSON as itself, tables for people.
type Result interface {
	Tables() []Table
}

// Render writes r as "json" (the value, indented) or "table".
func Render(w io.Writer, format string, r Result) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	for i, t := range r.Tables() {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if t.Title != "" {
			fmt.Fprintln(w, t.Title)
		}
		if len(t.Rows) == 0 {
			fmt.Fprintln(w, "  (none)")
		} else {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  "+strings.Join(t.Columns, "\t"))
			for _, row := range t.Rows {
				fmt.Fprintln(tw, "  "+strings.Join(row, "\t"))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		for _, n := range t.Notes {
			fmt.Fprintln(w, "  "+n)
		}
	}
	return nil
}

// orDash shows an empty value as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cents formats an amount in cents as units with two decimals: 1234567 ->
// "12,345.67".
func cents(c int64) string {
	neg := c < 0
	if neg {
		c = -c
	}
	units := fmt.Sprint(c / 100)
	var b strings.Builder
	for i, r := range units {
		if i > 0 && (len(units)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	s := fmt.Sprintf("%s.%02d", b.String(), c%100)
	if neg {
		return "-" + s
	}
	return s
}

// age formats a duration for people, to the second.
func age(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Truncate(time.Second).String()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
