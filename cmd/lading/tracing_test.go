package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lading-registry/lading/logging"
)

// otlpReceiver collects the spans posted to it over OTLP/HTTP, in OTLP's
// JSON encoding.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*otlpSpan
	srv   *httptest.Server
}

type otlpSpan struct {
	TraceID      string `json:"traceId"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId"`
	Name         string `json:"name"`
	Kind         int    `json:"kind"`
	Attributes   []struct {
		Key   string `json:"key"`
		Value struct {
			String string `json:"stringValue"`
		} `json:"value"`
	} `json:"attributes"`
	attrs map[string]string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	rc := &otlpReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "not OTLP/HTTP JSON", http.StatusBadRequest)
			return
		}
		var req struct {
			ResourceSpans []struct {
				ScopeSpans []struct {
					Spans []*otlpSpan `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"resourceSpans"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					s.attrs = map[string]string{}
					for _, kv := range s.Attributes {
						s.attrs[kv.Key] = kv.Value.String
					}
					rc.spans = append(rc.spans, s)
				}
			}
		}
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// TestServeTracesRequestsAndStorageCalls pushes an image with
// go-containerregistry to a server that traces, and HEADs a blob as a
// traced caller would: each request is a server span named by its route,
// its storage calls are spans under it, a caller's traceparent is
// followed, and the access line carries the trace id.
func TestServeTracesRequestsAndStorageCalls(t *testing.T) {
	rc := newOTLPReceiver(t)
	cfg := testConfig(t.TempDir(), "127.0.0.1:0")
	cfg.Tracing.Endpoint = rc.srv.URL
	var accessLines bytes.Buffer
	access, err := logging.NewAccess(&accessLines, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	listening, served := make(chan string, 1), make(chan error, 1)
	go func() { served <- serve(ctx, cfg, discard, access, listening) }()
	var addr string
	select {
	case addr = <-listening:
	case err := <-served:
		t.Fatalf("serve: %v", err)
	}

	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(addr + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest(http.MethodHead, "http://"+addr+"/v2/team/app/blobs/"+d.String(), nil)
	req.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	resp.Body.Close()
	// A caller that did not sample its trace: nothing is recorded.
	const unsampled = "5bf92f3577b34da6a3ce929d0e0e4737"
	req.Header.Set("traceparent", "00-"+unsampled+"-"+callerSpan+"-00")
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel() // the stop sends the spans still held
	if err := <-served; err != nil {
		t.Fatal(err)
	}

	rc.mu.Lock()
	defer rc.mu.Unlock()
	var manifestPut, head *otlpSpan
	for _, s := range rc.spans {
		switch s.Name {
		case "PUT manifest":
			manifestPut = s
		case "HEAD blob":
			head = s
		}
	}
	if manifestPut == nil || head == nil {
		var names []string
		for _, s := range rc.spans {
			names = append(names, s.Name)
		}
		t.Fatalf("no PUT manifest or HEAD blob span among %q", names)
	}
	if a := manifestPut.attrs; a["lading.repository"] != "team/app" || a["http.route"] != "manifest" || manifestPut.Kind != 2 {
		t.Errorf("PUT manifest span: kind %v, attributes %v", manifestPut.Kind, a)
	}
	// The push's storage calls are its children, in its trace.
	children := 0
	for _, s := range rc.spans {
		if strings.HasPrefix(s.Name, "storage.") && s.ParentSpanID == manifestPut.SpanID {
			children++
			if s.TraceID != manifestPut.TraceID || s.attrs["lading.storage.driver"] != "filesystem" || s.attrs["lading.storage.path"] == "" {
				t.Errorf("storage span %s: trace %s, attributes %v", s.Name, s.TraceID, s.attrs)
			}
		}
	}
	if children == 0 {
		t.Error("the manifest push's storage calls have no spans under it")
	}
	if head.TraceID != callerTrace || head.ParentSpanID != callerSpan {
		t.Errorf("HEAD span in trace %s under %s, want the caller's %s under %s", head.TraceID, head.ParentSpanID, callerTrace, callerSpan)
	}
	if !strings.Contains(accessLines.String(), "trace_id="+callerTrace) {
		t.Errorf("no access line with the caller's trace id:\n%s", accessLines.String())
	}
	if strings.Contains(accessLines.String(), unsampled) {
		t.Errorf("an access line names a trace not recorded:\n%s", accessLines.String())
	}
	// Storage calls outside requests (the start's, a readiness probe's)
	// make no spans of their own.
	for _, s := range rc.spans {
		if s.ParentSpanID == "" && strings.HasPrefix(s.Name, "storage.") {
			t.Errorf("a storage span with no request: %s %s", s.Name, s.attrs["lading.storage.path"])
		}
		if s.TraceID == unsampled {
			t.Errorf("a span of a trace its caller did not sample: %s", s.Name)
		}
	}
}
