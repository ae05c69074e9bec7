package server

import (
	"math"
	"strconv"
	"strings"
)

// rangeKind is how a blob GET answers its Range header.
type rangeKind int

const (
	rangeNone          rangeKind = iota // serve the whole blob, 200
	rangePartial                        // serve [off, off+n), 206
	rangeUnsatisfiable                  // 416 with Content-Range: bytes */size
)

// parseRange interprets a Range header (RFC 9110 §14.2) against a blob of
// size bytes and returns the span to serve, n bytes from off. Lading
// serves one range per response:
//
//   - no header, a unit other than "bytes", several ranges, or an empty
//     blob: the whole blob (the RFC lets a server ignore Range);
//   - one well-formed range overlapping the blob: that part, its end
//     clamped to the blob, and a suffix longer than the blob is the blob;
//   - one range that is malformed (not digits, first > last, numbers
//     beyond int64) or starts at or after the end: unsatisfiable.
func parseRange(header string, size int64) (off, n int64, kind rangeKind) {
	header = strings.TrimSpace(header)
	if header == "" || size <= 0 {
		return 0, size, rangeNone
	}
	unit, spec, ok := strings.Cut(header, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return 0, size, rangeNone
	}
	if strings.Contains(spec, ",") {
		return 0, size, rangeNone
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, rangeUnsatisfiable
	}
	if first == "" {
		suffix, ok := rangePos(last)
		if !ok || suffix == 0 {
			return 0, 0, rangeUnsatisfiable
		}
		suffix = min(suffix, size)
		return size - suffix, suffix, rangePartial
	}
	start, ok := rangePos(first)
	if !ok || start >= size {
		return 0, 0, rangeUnsatisfiable
	}
	end := size - 1
	if last != "" {
		e, ok := rangePos(last)
		if !ok || e < start {
			return 0, 0, rangeUnsatisfiable
		}
		end = min(e, size-1)
	}
	return start, end - start + 1, rangePartial
}

// rangePos is parseDecimal for a position in a Range: one past int64 is
// past any blob, and counts as the largest (RFC 9110 bounds no position,
// and a last one past the end means the end).
func rangePos(s string) (int64, bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return math.MaxInt64, true // digits alone: only too large
	}
	return v, true
}

// parseDecimal accepts only ASCII digits: strconv would also take a sign.
func parseDecimal(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// parseContentRange reads an upload chunk's Content-Range. The spec's form
// is "<start>-<end>" (inclusive); clients also send the RFC 9110 shape
// "bytes <start>-<end>/<total>", and some "bytes=<start>-<end>", so all
// three are accepted.
func parseContentRange(header string) (start, end int64, ok bool) {
	s := strings.TrimSpace(header)
	if rest, found := strings.CutPrefix(s, "bytes"); found {
		s = strings.TrimLeft(rest, " =")
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, ok1 := parseDecimal(a)
	end, ok2 := parseDecimal(b)
	// The span's length, end-start+1, must be an int64 too.
	if !ok1 || !ok2 || end < start || end-start == math.MaxInt64 {
		return 0, 0, false
	}
	return start, end, true
}

// uploadRange is the Range header of an upload session holding offset
// bytes: the inclusive span received. An empty session reports "0-0", as
// clients expect a span of that shape even before the first byte.
func uploadRange(offset int64) string {
	return "0-" + strconv.FormatInt(max(offset-1, 0), 10)
}
