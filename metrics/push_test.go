package metrics_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lading-registry/lading/logging"
	"github.com/lading-registry/lading/metrics"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/server"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// TestPushMovesCounters wires metrics and the access log around the real
// HTTP layer the way lading serve does, pushes and pulls an image with
// go-containerregistry, and reads the counters back from /metrics.
func TestPushMovesCounters(t *testing.T) {
	m := metrics.New()
	var logs bytes.Buffer
	logger, err := logging.New(&logs, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	mem := inmemory.New()
	reg := registry.New(driver.Instrument(mem, m.DriverObserver(mem.Name())), registry.Options{Logger: logger})
	api := server.New(reg, server.Options{Logger: logger})

	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.Handle("/", logging.AccessLog(logger, m.Instrument(api, server.RouteLabels), server.RouteLabels))
	srv := httptest.NewServer(mux)

	img, err := random.Image(1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/team/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var pulledBytes int64
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		pulledBytes += n
	}

	// A client has its last byte before the server has recorded the
	// request; Close waits for every handler to return.
	srv.Close()
	scraped := httptest.NewRecorder()
	mux.ServeHTTP(scraped, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(scraped.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum := func(metric string, labels map[string]string) float64 {
		var total float64
		for _, s := range families[metric].GetMetric() {
			ok := true
			for _, l := range s.GetLabel() {
				if want, has := labels[l.GetName()]; has && want != l.GetValue() {
					ok = false
				}
			}
			if ok {
				total += s.GetCounter().GetValue() + float64(s.GetHistogram().GetSampleCount())
			}
		}
		return total
	}
	checks := []struct {
		what string
		got  float64
		min  float64
	}{
		{"manifest PUT 201", sum("lading_http_requests_total", map[string]string{"route": "manifest", "method": "PUT", "status": "201"}), 1},
		{"upload PUT 201", sum("lading_http_requests_total", map[string]string{"route": "blob-upload", "method": "PUT", "status": "201"}), 4},
		{"bytes pushed into uploads", sum("lading_http_request_bytes_total", map[string]string{"route": "blob-upload"}), 3 << 20},
		{"bytes pulled from blobs", sum("lading_http_response_bytes_total", map[string]string{"route": "blob"}), float64(pulledBytes)},
		{"storage operations timed", sum("lading_storage_operation_duration_seconds", map[string]string{"driver": mem.Name()}), 1},
	}
	for _, c := range checks {
		if c.got < c.min {
			t.Errorf("%s: %v, want at least %v", c.what, c.got, c.min)
		}
	}
	if t.Failed() {
		t.Logf("requests: %v", families["lading_http_requests_total"])
	}

	// One access line per request, each with a route and a request id.
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var requests int
	for _, l := range lines {
		var line struct {
			Msg, Route, Repository string
			RequestID              string `json:"request_id"`
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if line.Msg != "request" || line.Route == "" || line.Repository == "" {
			continue
		}
		requests++
		if line.Repository != "team/app" || line.RequestID == "" {
			t.Errorf("access line %s", l)
		}
	}
	if total := sum("lading_http_requests_total", map[string]string{"route": "manifest"}) + sum("lading_http_requests_total", map[string]string{"route": "blob"}) + sum("lading_http_requests_total", map[string]string{"route": "blob-upload"}) + sum("lading_http_requests_total", map[string]string{"route": "blob-upload-start"}); float64(requests) != total {
		t.Errorf("%d access lines with a repository, %v requests counted", requests, total)
	}
}
