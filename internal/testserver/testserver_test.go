package testserver

import (
	"os"
	"path/filepath"
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
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	withGC := write("gc.yaml", "gc:\n  interval: 1h\n")
	without := write("other.yaml", "gc:\n  grace: 1h\nhttp:\n  addr: 127.0.0.1:0\n")
	for _, tc := range []struct {
		name      string
		args, env []string
		off       bool // LADING_GC_INTERVAL=0 added
	}{
		{"nothing set", nil, []string{"HOME=/"}, true},
		{"env sets it", nil, []string{"LADING_GC_INTERVAL=1h"}, false},
		{"file by flag", []string{"--root", dir, "--config", withGC}, nil, false},
		{"file by flag=", []string{"-config=" + withGC}, nil, false},
		{"file by env", nil, []string{"LADING_CONFIG=" + withGC}, false},
		{"file without it", []string{"--config", without}, nil, true},
		{"later file without it", []string{"--config", withGC}, []string{"LADING_CONFIG=" + without}, false},
	} {
		got := NoScheduledGC(tc.args, tc.env)
		if off := slices.Contains(got, "LADING_GC_INTERVAL=0"); off != tc.off || !slices.Equal(got[:len(tc.env)], tc.env) {
			t.Errorf("%s: %q, want the schedule turned off: %v", tc.name, got, tc.off)
		}
	}
}
