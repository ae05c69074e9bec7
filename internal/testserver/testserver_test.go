package testserver

import (
	"slices"
	"testing"
)

func TestServerErrorLine(t *testing.T) {
	for line, want := range map[string]bool{
		`time=x level=ERROR msg=request method=GET path=/v2/a/blobs/x status=500 bytes_in=0`:                           true,
		`time=x level=INFO msg=request method=GET path=/v2/a/blobs/x status=404 bytes_in=0`:                            false,
		`time=x level=INFO msg=request method=GET path=/v2/a status=400 user_agent="\ntime=x level=ERROR msg=request"`: false,
		`{"time":"x","level":"ERROR","msg":"request","path":"/v2/a","status":503}`:                                     true,
		`{"time":"x","level":"INFO","msg":"request","path":"/v2/a","status":201}`:                                      false,
	} {
		if got := serverErrorLine.MatchString(line); got != want {
			t.Errorf("%s: matched %v, want %v", line, got, want)
		}
	}
}

func TestNoScheduledGC(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		off  bool // LADING_GC_INTERVAL=0 added
	}{
		{"nothing set", []string{"HOME=/"}, true},
		{"env sets it", []string{"LADING_GC_INTERVAL=1h"}, false},
	} {
		got := NoScheduledGC(tc.env)
		if off := slices.Contains(got, "LADING_GC_INTERVAL=0"); off != tc.off || !slices.Equal(got[:len(tc.env)], tc.env) {
			t.Errorf("%s: %q, want the schedule turned off: %v", tc.name, got, tc.off)
		}
	}
}
