package ops

import (
	"bufio"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestMetricsMoveWithAPush scrapes /metrics before and after a push with
// go-containerregistry, on the registry's listener and on a separate debug
// listener.
func TestMetricsMoveWithAPush(t *testing.T) {
	t.Run("main listener", func(t *testing.T) {
		p, addr := serve(t, nil, "--root", t.TempDir())
		checkPushMovesMetrics(t, addr, "http://"+addr+"/metrics")
		if p.stop(t) != 0 {
			t.Error("exit status after SIGTERM is not 0")
		}
	})

	t.Run("debug listener", func(t *testing.T) {
		p, addr := serve(t, nil, "--debug-addr", debugAddr, "--root", t.TempDir())
		debug, err := p.listening("debug listener")
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "lading_") {
				t.Errorf("main listener answers %s with %d although http.debugaddr is set:\n%.200s", path, resp.StatusCode, body)
			}
			if resp, err := http.Get("http://" + debug + path); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("debug listener %s: %v %v", path, resp, err)
			} else {
				resp.Body.Close()
			}
		}
		// The debug listener serves nothing of the registry, nor profiles
		// unless asked.
		for _, path := range []string{"/v2/", "/debug/pprof/"} {
			if resp, err := http.Get("http://" + debug + path); err != nil || resp.StatusCode != http.StatusNotFound {
				t.Errorf("debug listener %s: %v %v", path, resp, err)
			} else {
				resp.Body.Close()
			}
		}
		checkPushMovesMetrics(t, addr, "http://"+debug+"/metrics")
		if p.stop(t) != 0 {
			t.Error("exit status after SIGTERM is not 0")
		}
	})
}

// TestPprofOnlyOnTheDebugListener turns http.pprof on: the debug listener
// serves Go's profiles, the registry's listener does not.
func TestPprofOnlyOnTheDebugListener(t *testing.T) {
	p, addr := serve(t, nil, "--debug-addr", debugAddr, "--set", "http.pprof=true", "--root", t.TempDir())
	debug, err := p.listening("debug listener")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + debug + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Errorf("debug listener /debug/pprof/goroutine: %d\n%.200s", resp.StatusCode, body)
	}
	// The operational paths stay beside the profiles.
	if resp, err := http.Get("http://" + debug + "/metrics"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("debug listener /metrics: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1"} {
		if resp, err := http.Get("http://" + addr + path); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Errorf("main listener %s: %v %v", path, resp, err)
		} else {
			resp.Body.Close()
		}
	}
	if p.stop(t) != 0 {
		t.Error("exit status after SIGTERM is not 0")
	}
}

func checkPushMovesMetrics(t *testing.T, addr, metricsURL string) {
	t.Helper()
	before := scrape(t, metricsURL)
	const layerSize, layers = 256 << 10, 3
	img, err := random.Image(layerSize, layers)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(addr + "/ops/metrics:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, metricsURL)
	if got := after.sum("lading_build_info", "goversion="+runtime.Version()); got != 1 {
		t.Errorf("lading_build_info of %s: %v, want 1", runtime.Version(), got)
	}
	// Buckets at the bounds latency objectives are written in.
	for _, le := range []string{`le="0.1"`, `le="0.25"`, `le="1"`} {
		found := false
		for series := range after {
			found = found || strings.HasPrefix(series, "lading_http_request_duration_seconds_bucket{") && strings.Contains(series, le)
		}
		if !found {
			t.Errorf("no request duration bucket %s", le)
		}
	}
	moved := func(name string, labels ...string) float64 {
		return after.sum(name, labels...) - before.sum(name, labels...)
	}

	// go-containerregistry pushes each blob as a POST, a PATCH with the
	// bytes and a PUT; the manifest is one PUT.
	blobs := float64(layers + 1)
	if got := moved("lading_http_requests_total", "route=blob-upload-start", "method=POST", "status=202"); got < blobs {
		t.Errorf("POST blob-upload-start 202 moved by %v, want at least %v", got, blobs)
	}
	if got := moved("lading_http_requests_total", "route=blob-upload", "status=201"); got < blobs {
		t.Errorf("blob-upload 201 moved by %v, want at least %v", got, blobs)
	}
	if got := moved("lading_http_requests_total", "route=manifest", "method=PUT", "status=201"); got != 1 {
		t.Errorf("PUT manifest 201 moved by %v, want 1", got)
	}
	if got := moved("lading_http_request_duration_seconds_count", "route=manifest", "method=PUT"); got != 1 {
		t.Errorf("manifest PUT duration count moved by %v, want 1", got)
	}
	layersIn := moved("lading_http_request_bytes_total", "route=blob-upload")
	if layersIn < layers*layerSize {
		t.Errorf("bytes in on blob-upload moved by %v, want at least %d", layersIn, layers*layerSize)
	}
	manifest, _ := img.RawManifest()
	if got := moved("lading_http_request_bytes_total", "route=manifest"); got != float64(len(manifest)) {
		t.Errorf("bytes in on manifest moved by %v, want %d", got, len(manifest))
	}
	for _, op := range []string{"Writer", "Move", "PutContent", "StatObject"} {
		if got := moved("lading_storage_operation_duration_seconds_count", "driver=filesystem", "op="+op); got < 1 {
			t.Errorf("storage %s latency count moved by %v", op, got)
		}
	}
	if got := moved("lading_storage_operation_errors_total"); got != 0 {
		t.Errorf("storage errors moved by %v during a clean push", got)
	}
	if got := moved("lading_upload_sessions_started_total"); got < blobs {
		t.Errorf("upload sessions started moved by %v, want at least %v", got, blobs)
	}
	if s, e := after.sum("lading_upload_sessions_started_total"), after.sum("lading_upload_sessions_ended_total"); s != e {
		t.Errorf("after a complete push %v sessions started and %v ended", s, e)
	}
}

// samples is one scrape: the text exposition's sample lines by series.
type samples map[string]float64

func scrape(t *testing.T, url string) samples {
	t.Helper()
	return scrapeWith(t, http.DefaultClient, url)
}

func scrapeWith(t *testing.T, c *http.Client, url string) samples {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	s := samples{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		s[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// sum adds up the series of metric name that carry every label given as
// key=value.
func (s samples) sum(metric string, labels ...string) float64 {
	var total float64
	for series, v := range s {
		n, rest, _ := strings.Cut(series, "{")
		if n != metric {
			continue
		}
		all := true
		for _, l := range labels {
			k, val, _ := strings.Cut(l, "=")
			if !strings.Contains("{"+rest, "{"+k+`="`+val+`"`) && !strings.Contains(rest, ","+k+`="`+val+`"`) {
				all = false
				break
			}
		}
		if all {
			total += v
		}
	}
	return total
}
