package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/lading-registry/lading/logging"
)

// otlpReceiver collects the spans posted to it over OTLP/HTTP.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	attrs map[*tracepb.Span]map[string]string
	srv   *httptest.Server
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	rc := &otlpReceiver{attrs: map[*tracepb.Span]map[string]string{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, _ := io.ReadAll(body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					a := map[string]string{}
					for _, kv := range s.Attributes {
						a[kv.Key] = kv.Value.GetStringValue()
					}
					rc.spans = append(rc.spans, s)
					rc.attrs[s] = a
				}
			}
		}
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(nil)
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
	byID := map[string]*tracepb.Span{}
	for _, s := range rc.spans {
		byID[string(s.SpanId)] = s
	}
	var manifestPut, head *tracepb.Span
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
	if a := rc.attrs[manifestPut]; a["lading.repository"] != "team/app" || a["http.route"] != "manifest" || manifestPut.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("PUT manifest span: kind %v, attributes %v", manifestPut.Kind, a)
	}
	// The push's storage calls are its children, in its trace.
	children := 0
	for _, s := range rc.spans {
		if strings.HasPrefix(s.Name, "storage.") && bytes.Equal(s.ParentSpanId, manifestPut.SpanId) {
			children++
			if !bytes.Equal(s.TraceId, manifestPut.TraceId) || rc.attrs[s]["lading.storage.driver"] != "filesystem" || rc.attrs[s]["lading.storage.path"] == "" {
				t.Errorf("storage span %s: trace %x, attributes %v", s.Name, s.TraceId, rc.attrs[s])
			}
		}
	}
	if children == 0 {
		t.Error("the manifest push's storage calls have no spans under it")
	}
	if got := hexOf(head.TraceId); got != callerTrace || hexOf(head.ParentSpanId) != callerSpan {
		t.Errorf("HEAD span in trace %s under %x, want the caller's %s under %s", got, head.ParentSpanId, callerTrace, callerSpan)
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
		if len(s.ParentSpanId) == 0 && strings.HasPrefix(s.Name, "storage.") {
			t.Errorf("a storage span with no request: %s %s", s.Name, rc.attrs[s]["lading.storage.path"])
		}
		if hexOf(s.TraceId) == unsampled {
			t.Errorf("a span of a trace its caller did not sample: %s", s.Name)
		}
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
