package server

import "testing"

func TestParseRange(t *testing.T) {
	const size = 2048
	tests := []struct {
		header string
		off, n int64
		kind   rangeKind
	}{
		{"", 0, size, rangeNone},
		{"bytes=500-1499", 500, 1000, rangePartial},
		{"bytes=500-", 500, size - 500, rangePartial},
		{"bytes=-500", size - 500, 500, rangePartial},
		{"bytes=2000-5000", 2000, 48, rangePartial},
		{"bytes=0-0", 0, 1, rangePartial},
		{"bytes=2047-2047", 2047, 1, rangePartial},
		{"bytes=-5000", 0, size, rangePartial},
		{"BYTES = 1-2", 1, 2, rangePartial},
		{"bytes=500-0", 0, 0, rangeUnsatisfiable},
		{"bytes=5000-10000", 0, 0, rangeUnsatisfiable},
		{"bytes=2048-", 0, 0, rangeUnsatisfiable},
		{"bytes=-0", 0, 0, rangeUnsatisfiable},
		{"bytes=-", 0, 0, rangeUnsatisfiable},
		{"bytes=", 0, 0, rangeUnsatisfiable},
		{"bytes=a-b", 0, 0, rangeUnsatisfiable},
		{"bytes=+1-2", 0, 0, rangeUnsatisfiable},
		{"bytes=1-+2", 0, 0, rangeUnsatisfiable},
		{"bytes=99999999999999999999-", 0, 0, rangeUnsatisfiable},
		{"bytes=0-99999999999999999999", 0, size, rangePartial},
		{"bytes=-99999999999999999999", 0, size, rangePartial},
		{"bytes=0-9999999999999999999x", 0, 0, rangeUnsatisfiable},
		{"bytes=0-9223372036854775808", 0, size, rangePartial},
		{"bytes=0-00000000000000000009", 0, 10, rangePartial},
		{"bytes=-00000000000000000000", 0, 0, rangeUnsatisfiable},
		{"bytes=0-1,4-5", 0, size, rangeNone},
		{"items=0-1", 0, size, rangeNone},
		{"garbage", 0, size, rangeNone},
	}
	for _, tt := range tests {
		off, n, kind := parseRange(tt.header, size)
		if off != tt.off || n != tt.n || kind != tt.kind {
			t.Errorf("parseRange(%q) = %d, %d, %v; want %d, %d, %v", tt.header, off, n, kind, tt.off, tt.n, tt.kind)
		}
	}
	if _, n, kind := parseRange("bytes=0-10", 0); kind != rangeNone || n != 0 {
		t.Errorf("empty blob: %d, %v", n, kind)
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=-5", "bytes=5-", "bytes=1-0", "bytes=0-1,2-3", "bytes= 7 - 9 "} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			return
		}
		off, n, kind := parseRange(header, size)
		switch kind {
		case rangeNone:
			if off != 0 || n != size {
				t.Fatalf("whole blob as %d+%d of %d", off, n, size)
			}
		case rangePartial:
			if off < 0 || n <= 0 || off+n > size || off+n < off {
				t.Fatalf("range %d+%d outside blob of %d", off, n, size)
			}
		case rangeUnsatisfiable:
		default:
			t.Fatalf("kind %v", kind)
		}
	})
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		header     string
		start, end int64
		ok         bool
	}{
		{"0-1023", 0, 1023, true},
		{"1024-2047", 1024, 2047, true},
		{"bytes 0-9/10", 0, 9, true},
		{"bytes 0-9/*", 0, 9, true},
		{"bytes=5-9", 5, 9, true},
		{"9-5", 0, 0, false},
		{"-5", 0, 0, false},
		{"5-", 0, 0, false},
		{"a-b", 0, 0, false},
		{"0-9223372036854775807", 0, 0, false}, // a length past int64
		{"1-9223372036854775807", 1, 9223372036854775807, true},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		start, end, ok := parseContentRange(tt.header)
		if start != tt.start || end != tt.end || ok != tt.ok {
			t.Errorf("parseContentRange(%q) = %d, %d, %v", tt.header, start, end, ok)
		}
	}
}
