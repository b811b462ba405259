package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/signerd/signerd/secrets"
	signing "github.com/signerd/signerd/signing/aliyun"
)

// device is one good row of the file.
type device struct {
	line   int // line of the file where the row starts; the header is line 1
	id     secrets.DeviceID
	secret string
}

// badRow is a row that is not imported. reason never holds a value from
// the file: a misaligned row can put a secret in any column.
type badRow struct {
	line   int
	reason string
}

// export is a parsed device export.
type export struct {
	devices []device
	bad     []badRow
	rows    int // data rows read, good and bad
}

// The columns the import needs, as the console names them; the header is
// matched case-insensitively.
var columns = [...]string{"ProductKey", "DeviceName", "DeviceSecret"}

const (
	colProductKey = iota
	colDeviceName
	colDeviceSecret
)

// headerError is a file that cannot be imported at all.
type headerError struct{ msg string }

func (e *headerError) Error() string { return e.msg }

// readExport parses the console's device export: a header line, then one
// device per row. It reports every bad row by its line number (rows
// spanning lines in quoted fields count by their first line) and keeps
// every good one. Only a file without a usable header, or a read error, is
// an error.
func readExport(r io.Reader) (export, error) {
	br := bufio.NewReader(r)
	// Spreadsheet programs save "CSV UTF-8" with a byte-order mark.
	if b, err := br.Peek(3); err == nil && string(b) == "\uFEFF" {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // checked per row, so that one short row is one bad row
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return export{}, &headerError{"empty file: want a header line naming ProductKey, DeviceName and DeviceSecret"}
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return export{}, &headerError{fmt.Sprintf("header (line %d): malformed CSV: %v", pe.StartLine, pe.Err)}
		}
		return export{}, err
	}
	idx, err := headerIndex(header)
	if err != nil {
		return export{}, err
	}
	need := max(idx[0], idx[1], idx[2]) + 1

	var ex export
	type firstSeen struct {
		line int
		sum  [sha256.Size]byte
	}
	seen := map[secrets.DeviceID]firstSeen{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return ex, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return ex, err
			}
			// The reader resumes after the malformed row (an unterminated
			// quote runs to the end of the file: the rows it swallowed are
			// reported as this one).
			ex.rows++
			ex.bad = append(ex.bad, badRow{pe.StartLine, "malformed CSV: " + pe.Err.Error()})
			continue
		}
		ex.rows++
		line, _ := cr.FieldPos(0)
		if len(rec) < need {
			ex.bad = append(ex.bad, badRow{line, fmt.Sprintf("has %d fields, the header needs at least %d", len(rec), need)})
			continue
		}
		d := device{
			line:   line,
			id:     secrets.DeviceID{ProductKey: rec[idx[colProductKey]], DeviceName: rec[idx[colDeviceName]]},
			secret: rec[idx[colDeviceSecret]],
		}
		if reasons := validate(d); len(reasons) > 0 {
			ex.bad = append(ex.bad, badRow{line, strings.Join(reasons, "; ")})
			continue
		}
		// Only a digest is kept to tell a repeated row from a contradicting one.
		sum := sha256.Sum256([]byte(d.secret))
		if first, dup := seen[d.id]; dup {
			what := "with the same secret"
			if first.sum != sum {
				what = "with a different secret (only line " + fmt.Sprint(first.line) + "'s is imported: check which is right)"
			}
			ex.bad = append(ex.bad, badRow{line, fmt.Sprintf("duplicate of line %d: device %s again, %s", first.line, label(d), what)})
			continue
		}
		seen[d.id] = firstSeen{line, sum}
		ex.devices = append(ex.devices, d)
	}
}

// headerIndex finds the needed columns in the header.
func headerIndex(header []string) ([3]int, error) {
	idx := [3]int{-1, -1, -1}
	for i, h := range header {
		h = strings.TrimSpace(h)
		for c, name := range columns {
			if strings.EqualFold(h, name) {
				if idx[c] >= 0 {
					return idx, &headerError{fmt.Sprintf("header (line 1): column %s appears twice", name)}
				}
				idx[c] = i
			}
		}
	}
	var missing []string
	for c, name := range columns {
		if idx[c] < 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		// The header's own cells are not echoed: a file without a header
		// has a device, and its secret, on line 1.
		return idx, &headerError{fmt.Sprintf("header (line 1): no %s column; line 1 must name the columns ProductKey, DeviceName and DeviceSecret (any case, any order)",
			strings.Join(missing, ", "))}
	}
	return idx, nil
}

// validate checks a row by the platform's rules. The reasons name fields
// and rules, never values.
func validate(d device) []string {
	var reasons []string
	if err := signing.ValidateProductKey(d.id.ProductKey); err != nil {
		reasons = append(reasons, err.Error())
	}
	if err := signing.ValidateDeviceName(d.id.DeviceName); err != nil {
		reasons = append(reasons, err.Error())
	}
	switch {
	case d.secret == "":
		reasons = append(reasons, "deviceSecret: must not be empty")
	case strings.TrimSpace(d.secret) != d.secret:
		// Almost certainly an editing accident; imported as is, the device
		// could never log in.
		reasons = append(reasons, "deviceSecret: has leading or trailing white space")
	}
	return reasons
}

// label names a good row's device for the report. Names are not secret,
// but a misaligned file could hold the row's secret in a name column, and
// that is never printed.
func label(d device) string {
	pk, dn := d.id.ProductKey, d.id.DeviceName
	if pk == d.secret {
		pk = "[redacted]"
	}
	if dn == d.secret {
		dn = "[redacted]"
	}
	return pk + "/" + dn
}
