package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lading-registry/lading/internal/httpx"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

// scrape reads Handler's output the way Prometheus does.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics answered %d", rec.Code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// value returns the counter, gauge, or histogram sample count of the
// series of name with exactly labels, or -1 if there is none.
func value(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := families[name]
	if !ok {
		return -1
	}
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := len(got) == len(labels)/2
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && got[labels[i]] == labels[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func TestInstrumentCountsRequests(t *testing.T) {
	m := New()
	// A stand-in router: labels what it recognises and answers 404 to the
	// rest before any route is known.
	endpoint := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodGet {
			io.Copy(w, strings.NewReader(strings.Repeat("b", 1000)))
		} else {
			w.WriteHeader(http.StatusAccepted)
		}
	}
	labelled := httpx.Label(func(r *http.Request) (string, string) { return "blob", "library/alpine" })(http.HandlerFunc(endpoint))
	router := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v2/") {
			http.NotFound(w, r)
			return
		}
		labelled.ServeHTTP(w, r.WithContext(r.Context()))
	})
	srv := httptest.NewServer(m.Instrument(router, nil))

	do := func(method, path, body string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	do("GET", "/v2/library/alpine/blobs/sha256:aa", "")
	do("GET", "/v2/library/alpine/blobs/sha256:aa", "")
	do("PATCH", "/v2/library/alpine/blobs/uploads/x", "0123456789")
	do("GET", "/elsewhere", "")
	do("BREW", "/v2/coffee", "")
	srv.Close() // waits for the handlers, which record after the client has its bytes

	f := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"lading_http_requests_total", []string{"route", "blob", "method", "GET", "status", "200"}, 2},
		{"lading_http_requests_total", []string{"route", "blob", "method", "PATCH", "status", "202"}, 1},
		{"lading_http_requests_total", []string{"route", "none", "method", "GET", "status", "404"}, 1},
		{"lading_http_requests_total", []string{"route", "blob", "method", "OTHER", "status", "202"}, 1},
		{"lading_http_request_duration_seconds", []string{"route", "blob", "method", "GET"}, 2},
		{"lading_http_response_bytes_total", []string{"route", "blob"}, 2000},
		{"lading_http_request_bytes_total", []string{"route", "blob"}, 10},
	} {
		if got := value(f, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// TestInstrumentWithInfo covers a handler labelled by info alone, with no
// labelling middleware inside.
func TestInstrumentWithInfo(t *testing.T) {
	m := New()
	h := m.Instrument(http.NotFoundHandler(), func(*http.Request) (string, string) { return "catalog", "" })
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v2/_catalog", nil))
	if got := value(scrape(t, m), "lading_http_requests_total", "route", "catalog", "method", "GET", "status", "404"); got != 1 {
		t.Fatalf("requests = %v", got)
	}
}

// TestDriverObserver instruments a real filesystem driver and checks
// latencies are recorded per operation and only real failures counted.
func TestDriverObserver(t *testing.T) {
	m := New()
	fs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := driver.Instrument(fs, m.DriverObserver(fs.Name()))
	ctx := context.Background()

	if _, err := d.Stat(ctx, "/missing"); !driver.IsNotFound(err) {
		t.Fatalf("stat missing: %v", err)
	}
	if err := d.Create(ctx, "/lease", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, "/lease", []byte("b")); err != driver.ErrExists {
		t.Fatalf("second create: %v", err)
	}
	if _, err := d.Reader(ctx, "/lease", 100); err == nil {
		t.Fatal("reading beyond the end succeeded")
	}

	f := scrape(t, m)
	name := fs.Name()
	for _, c := range []struct {
		metric, op string
		want       float64
	}{
		{"lading_storage_operation_duration_seconds", "Stat", 1},
		{"lading_storage_operation_duration_seconds", "Create", 2},
		{"lading_storage_operation_duration_seconds", "Reader", 1},
		{"lading_storage_operation_errors_total", "Reader", 1},
		{"lading_storage_operation_errors_total", "Stat", -1},   // not found is no failure
		{"lading_storage_operation_errors_total", "Create", -1}, // nor a lost Create
	} {
		if got := value(f, c.metric, "driver", name, "op", c.op); got != c.want {
			t.Errorf("%s{op=%s} = %v, want %v", c.metric, c.op, got, c.want)
		}
	}
}

func TestRecordingMethods(t *testing.T) {
	m := New()
	if got := value(scrape(t, m), "lading_maintenance_failures_total", "task", "purge"); got != 0 {
		t.Errorf("maintenance failures before any: %v, want a series at 0", got)
	}
	observe := m.UploadObserver()
	observe(+1)
	observe(+1)
	observe(-1)
	cache := m.CacheObserver("links")
	cache(true)
	cache(true)
	cache(false)
	m.GCRun(2, 3, 4096)
	m.GCRun(0, 0, 0)
	m.MaintenanceFailed("gc")
	m.MaintenanceFailed("purge")
	m.MaintenanceFailed("purge")

	f := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"lading_upload_sessions_started_total", nil, 2},
		{"lading_upload_sessions_ended_total", nil, 1},
		{"lading_cache_hits_total", []string{"cache", "links"}, 2},
		{"lading_cache_misses_total", []string{"cache", "links"}, 1},
		{"lading_gc_runs_total", nil, 2},
		{"lading_gc_blobs_deleted_total", nil, 3},
		{"lading_gc_tags_evicted_total", nil, 2},
		{"lading_gc_bytes_reclaimed_total", nil, 4096},
		{"lading_maintenance_failures_total", []string{"task", "gc"}, 1},
		{"lading_maintenance_failures_total", []string{"task", "purge"}, 2},
	} {
		if got := value(f, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, runtime := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := f[runtime]; !ok {
			t.Errorf("%s missing: Go and process collectors not registered", runtime)
		}
	}
}

// TestIndependentRegistries makes two sets in one process, which global
// registration would refuse, and checks they do not share counts.
func TestIndependentRegistries(t *testing.T) {
	a, b := New(), New()
	a.CacheObserver("x")(true)
	if got := value(scrape(t, b), "lading_cache_hits_total", "cache", "x"); got != -1 {
		t.Fatalf("b sees a's hit: %v", got)
	}
}

func TestNilMetricsDoNothing(t *testing.T) {
	var m *Metrics
	m.GCRun(0, 1, 1)
	m.MaintenanceFailed("gc")
	if m.DriverObserver("filesystem") != nil || m.UploadObserver() != nil || m.CacheObserver("x") != nil {
		t.Error("nil metrics gave an observer")
	}
	h := http.NotFoundHandler()
	rec := httptest.NewRecorder()
	m.Instrument(h, nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusNotFound {
		t.Error("nil metrics changed the handler")
	}
}

// A request cut off by a panic after its status went out is counted.
func TestInstrumentCountsAbortedRequests(t *testing.T) {
	m := New()
	h := m.Instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		panic(http.ErrAbortHandler)
	}), func(*http.Request) (string, string) { return "blob", "" })
	func() {
		defer func() { recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v2/a/blobs/sha256:aa", nil))
	}()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `lading_http_requests_total{method="GET",route="blob",status="200"} 1`) {
		t.Fatalf("the aborted request is not counted:\n%s", rec.Body)
	}
}
