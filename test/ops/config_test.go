package ops

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPrecedence starts lading with one setting in a file, overridden by
// the environment, and another overridden by a flag, and watches the
// running process: the port it answers on and the format of its logs.
// The addresses it must not serve on are held by the test, so that no
// other process answers there meanwhile: a lading that took the wrong
// setting fails to start on one.
func TestPrecedence(t *testing.T) {
	root := t.TempDir()
	fileAddr := hold(t)
	file := func(format string) string {
		return writeFile(t, "lading.yaml", fmt.Sprintf(`
http:
  addr: %q
log:
  format: %s
storage:
  filesystem:
    root: %q
`, fileAddr, format, root))
	}

	t.Run("env over file, flag over file", func(t *testing.T) {
		config := file("json")
		p := serveAt(t, func(addr string) *proc {
			return launch(t, []string{"LADING_HTTP_ADDR=" + addr}, "serve", "--config", config, "--log-format", "text")
		})
		if p.stop(t) != 0 {
			t.Errorf("exit status %d after SIGTERM", p.cmd.ProcessState.ExitCode())
		}
		checkLogFormat(t, p.output(), "text")
	})

	t.Run("flag over env, env over file", func(t *testing.T) {
		// The file is named by LADING_CONFIG this time.
		env := []string{"LADING_CONFIG=" + file("text"), "LADING_HTTP_ADDR=" + hold(t), "LADING_LOG_FORMAT=json"}
		p := serveAt(t, func(addr string) *proc { return launch(t, env, "serve", "--addr", addr) })
		if p.stop(t) != 0 {
			t.Errorf("exit status %d after SIGTERM", p.cmd.ProcessState.ExitCode())
		}
		checkLogFormat(t, p.output(), "json")
	})
}

// checkLogFormat checks that every line lading wrote, including the access
// line of the request that found it ready, is in format.
func checkLogFormat(t *testing.T, out, format string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	access := 0
	for _, line := range lines {
		var rec map[string]any
		isJSON := json.Unmarshal([]byte(line), &rec) == nil
		switch {
		case format == "json" && !isJSON:
			t.Errorf("not a JSON log line: %s", line)
		case format == "text" && (isJSON || !strings.HasPrefix(line, "time=")):
			t.Errorf("not a text log line: %s", line)
		}
		if strings.Contains(line, "msg=request") || rec["msg"] == "request" {
			access++
		}
	}
	if access == 0 {
		t.Errorf("no access log line in:\n%s", out)
	}
}

// TestBadConfigNamesTheKey starts lading with broken settings: each start
// fails with a non-zero status and a message naming the key, never a panic.
func TestBadConfigNamesTheKey(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name string
		yaml string
		env  []string
		want []string // every one must appear in the message
	}{
		{name: "unknown key", yaml: "http:\n  adr: :5000\n", want: []string{"http.adr", "unknown key", "addr", "line 2"}},
		{name: "unknown section", yaml: "htp:\n  addr: :5000\n", want: []string{"htp", "unknown key"}},
		{name: "duration", yaml: "http:\n  draintimeout: soon\n", want: []string{"http.draintimeout", `"soon" is not a duration`}},
		{name: "negative duration", yaml: "http:\n  draintimeout: -5s\n", want: []string{"http.draintimeout", "0 or more"}},
		{name: "enum", yaml: "log:\n  format: xml\n", want: []string{"log.format", "text, json"}},
		{name: "port", yaml: "http:\n  addr: \":70000\"\n", want: []string{"http.addr", "65535"}},
		{name: "bool", yaml: "readonly: maybe\n", want: []string{"readonly", "true or false"}},
		{name: "list for a value", yaml: "http:\n  addr: [1, 2]\n", want: []string{"http.addr", "single value"}},
		{name: "scalar for a section", yaml: "http: 5\n", want: []string{"http", "mapping"}},
		{name: "size", yaml: "http:\n  maxmanifestsize: lots\n", want: []string{"http.maxmanifestsize"}},
		{name: "cert without key", yaml: "http:\n  tls:\n    cert: /etc/hostname\n", want: []string{"http.tls.key", "together"}},
		{name: "missing cert file", yaml: "http:\n  tls:\n    cert: /nonexistent/c.pem\n    key: /nonexistent/k.pem\n", want: []string{"http.tls.cert", "http.tls.key", "no such file"}},
		{name: "s3 without bucket", yaml: "storage:\n  driver: s3\n", want: []string{"storage.s3.bucket"}},
		{name: "debug on the main address", yaml: "http:\n  addr: 127.0.0.1:5000\n  debugaddr: 127.0.0.1:5000\n", want: []string{"http.debugaddr", "differ"}},
		{name: "cors origin", yaml: "http:\n  corsorigins: ui.example.com\n", want: []string{"http.corsorigins", "scheme://host"}},
		{name: "tag pattern", yaml: "tags:\n  immutable: \"v*, prod/:stable\"\n", want: []string{"tags.immutable", "empty component"}},
		{name: "several at once", yaml: "log:\n  level: loud\n  format: xml\n", want: []string{"log.level", "log.format"}},
		{name: "yaml syntax", yaml: "http:\n  addr: [\n", want: []string{"bad.yaml", "line"}},
		{name: "env typo", env: []string{"LADING_HTTP_ADRR=:5000"}, want: []string{"LADING_HTTP_ADRR", "not a Lading setting"}},
		{name: "secret not repeated", env: []string{"LADING_REDIS_PASSWORD=hunter2-secret"}, want: []string{"redis.password", "redis.addr is empty"}},
		{name: "env value", env: []string{"LADING_HTTP_IDLETIMEOUT=forever"}, want: []string{"http.idletimeout", "env LADING_HTTP_IDLETIMEOUT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := writeFile(t, "bad.yaml", tt.yaml)
			args := []string{"serve", "--config", file, "--root", root}
			if !strings.Contains(tt.yaml, "addr:") {
				// A port of the kernel's choice, in case the start
				// wrongly succeeds.
				args = append(args, "--addr", "127.0.0.1:0")
			}
			p := launch(t, tt.env, args...)
			code := p.exit(t, 10*time.Second)
			out := p.output()
			if code == 0 {
				t.Fatalf("exit status 0 with a bad setting:\n%s", out)
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
				t.Fatalf("panicked:\n%s", out)
			}
			for _, e := range tt.env {
				if _, secret, _ := strings.Cut(e, "="); strings.Contains(secret, "secret") && strings.Contains(out, secret) {
					t.Errorf("the message repeats the secret %q", secret)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("message lacks %q:\n%s", w, out)
				}
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		p := launch(t, nil, "serve", "--config", "/nonexistent/lading.yaml")
		if code := p.exit(t, 10*time.Second); code == 0 || !strings.Contains(p.output(), "/nonexistent/lading.yaml") {
			t.Fatalf("exit %d:\n%s", code, p.output())
		}
	})

	t.Run("check agrees with serve", func(t *testing.T) {
		file := writeFile(t, "bad.yaml", "http:\n  adr: :5000\n")
		p := launch(t, nil, "config", "check", file)
		if code := p.exit(t, 10*time.Second); code == 0 || !strings.Contains(p.output(), "http.adr") {
			t.Fatalf("exit %d:\n%s", code, p.output())
		}
	})
}

// TestExampleStarts checks that the file `lading config example` prints
// is one lading accepts and serves with.
func TestExampleStarts(t *testing.T) {
	p := launch(t, nil, "config", "example")
	if p.exit(t, 10*time.Second) != 0 {
		t.Fatalf("config example:\n%s", p.output())
	}
	file := writeFile(t, "example.yaml", p.output())
	check := launch(t, nil, "config", "check", file)
	if code := check.exit(t, 10*time.Second); code != 0 || !strings.Contains(check.output(), ": ok") {
		t.Fatalf("config check of the example: exit %d\n%s", code, check.output())
	}
	s, addr := serve(t, nil, "--config", file, "--root", t.TempDir())
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	if s.stop(t) != 0 {
		t.Fatalf("exit status %d", s.cmd.ProcessState.ExitCode())
	}
}

// TestMaxUploadsApplies sets http.maxuploads to 1 and holds one chunk
// streaming: a second is told to come back later, and once the first ends
// it goes through.
func TestMaxUploadsApplies(t *testing.T) {
	root := t.TempDir()
	p, addr := serve(t, nil, "--root", root, "--set", "http.maxuploads=1")
	base := "http://" + addr
	first, second := startUpload(t, nil, base, "ops/slots"), startUpload(t, nil, base, "ops/slots")

	// The first chunk's end waits for the test, not a clock: its slot is
	// taken for as long as the second takes to arrive, however loaded the
	// machine. 3 MiB go at once, more than the registry's copy buffer, so
	// that some reach the disk.
	const size, head = 8 << 20, 3 << 20
	body, w := io.Pipe()
	release := make(chan struct{})
	go func() {
		_, err := w.Write(make([]byte, head))
		if err == nil {
			select {
			case <-release:
				_, err = w.Write(make([]byte, size-head))
			case <-t.Context().Done(): // the test failed before the release
				err = t.Context().Err()
			}
		}
		w.CloseWithError(err)
	}()
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := patch(nil, base, first, body, size)
		done <- result{resp, err}
	}()
	waitForUploadData(t, root, 1)
	resp, err := patch(nil, base, second, strings.NewReader("x"), 1)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second upload while the only slot is taken: %s %v", resp.Status, resp.Header)
	}
	close(release)
	r := <-done
	if r.err != nil || r.resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first upload: %v %v", r.resp, r.err)
	}
	r.resp.Body.Close()
	resp, err = patch(nil, base, second, strings.NewReader("x"), 1)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("second upload once the slot is free: %s", resp.Status)
	}
	if p.stop(t) != 0 {
		t.Error("exit status after SIGTERM is not 0")
	}
}
