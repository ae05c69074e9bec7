package tracing

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// A traced request's writer still reads from a file (io.ReaderFrom), the
// way net/http reaches sendfile for a pull.
func TestHandlerKeepsReadFrom(t *testing.T) {
	receiver := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer receiver.Close()
	tr, err := Start(context.Background(), Options{Endpoint: receiver.URL, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	readsFrom := false
	h := tr.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, readsFrom = w.(io.ReaderFrom)
	}), func(*http.Request) (string, string) { return "blob", "team/app" })
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v2/team/app/blobs/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !readsFrom {
		t.Error("the traced response writer hides ReadFrom: pulls would not use sendfile")
	}
}

// Not tracing, nothing is wrapped.
func TestZeroTracesNothing(t *testing.T) {
	tr, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Tracer() != nil || tr.Transport(nil) != nil {
		t.Error("a tracer or transport without an endpoint")
	}
}

func recorded(t *testing.T) (*Tracing, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return &Tracing{provider: tp}, rec
}

// A download cut short by a panic (http.ErrAbortHandler) has its span
// named by its route, and marked failed.
func TestHandlerNamesAPanickedRequest(t *testing.T) {
	tr, rec := recorded(t)
	h := tr.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler)
	}), func(*http.Request) (string, string) { return "blob", "team/app" })
	srv := httptest.NewServer(h)
	defer srv.Close()
	if resp, err := http.Get(srv.URL + "/v2/team/app/blobs/x"); err == nil {
		resp.Body.Close()
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "GET blob" || spans[0].Status().Code != codes.Error {
		for _, s := range spans {
			t.Logf("%s %v", s.Name(), s.Status())
		}
		t.Fatalf("%d spans, want one named GET blob, failed", len(spans))
	}
}

// The upstream is sent the trace, never a caller's baggage, and the span
// keeps no query (a presigned URL's signature).
func TestTransportCarriesTheTraceOnly(t *testing.T) {
	tr, rec := recorded(t)
	var got http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer upstream.Close()
	client := &http.Client{Transport: tr.Transport(nil)}
	front := tr.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, upstream.URL+"/v2/library/alpine/blobs/x?X-Amz-Signature=secret", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
	}), func(*http.Request) (string, string) { return "blob", "library/alpine" })
	srv := httptest.NewServer(front)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/library/alpine/blobs/x", nil)
	req.Header.Set("baggage", "tenant=acme")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got.Get("traceparent") == "" || got.Get("baggage") != "" {
		t.Errorf("upstream got traceparent %q and baggage %q; want the one, not the other", got.Get("traceparent"), got.Get("baggage"))
	}
	for _, s := range rec.Ended() {
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.Emit(), "secret") {
				t.Errorf("span %s keeps %s=%s", s.Name(), a.Key, a.Value.Emit())
			}
		}
	}
	if n := len(rec.Ended()); n != 2 {
		t.Errorf("%d spans, want the request's and the upstream call's", n)
	}
}

// The export is OTLP/HTTP in JSON: ids in hex, 64-bit integers as strings,
// enums as numbers, with the headers OTEL_EXPORTER_OTLP_HEADERS gives.
func TestExportIsOTLPJSON(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20t0ken,x-tenant=acme")
	got := make(chan map[string]any, 1)
	var auth string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "not OTLP JSON", http.StatusBadRequest)
			return
		}
		auth = r.Header.Get("Authorization") + "|" + r.Header.Get("X-Tenant")
		got <- body
	}))
	defer receiver.Close()
	tr, err := Start(context.Background(), Options{Endpoint: receiver.URL, SampleRatio: 1, Version: "v9"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Tracer().Start(context.Background(), "storage.Stat", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.Int64("size", 1<<40), attribute.Bool("ok", true), attribute.String("path", "/blobs")))
	span.SetStatus(codes.Error, "gone")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	body := <-got
	if auth != "Bearer t0ken|acme" {
		t.Errorf("headers %q", auth)
	}
	raw, _ := json.Marshal(body)
	for _, want := range []string{`"service.name"`, `"stringValue":"lading"`, `"stringValue":"v9"`, `"name":"storage.Stat"`, `"kind":3`,
		`"intValue":"1099511627776"`, `"boolValue":true`, `"status":{"code":2,"message":"gone"}`, `"traceId":"` + span.SpanContext().TraceID().String() + `"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("export lacks %s:\n%s", want, raw)
		}
	}
}
