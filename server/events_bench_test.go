package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lading-registry/lading/notify"
)

// BenchmarkEvents measures what notifications cost the requests that
// make events (a manifest GET) and those that do not (HEADs): off, the
// request path compares a nil pointer; with an endpoint (which accepts
// everything at once), it builds and queues an event, and the sender's
// work runs beside it.
func BenchmarkEvents(b *testing.B) {
	receiver := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	b.Cleanup(receiver.Close)
	for _, mode := range []string{"off", "one-endpoint"} {
		var events *notify.Notifier
		if mode == "one-endpoint" {
			events = notify.New([]notify.EndpointConfig{{Name: "bench", URL: receiver.URL, Timeout: 5 * time.Second,
				Backoff: time.Second, MaxBackoff: time.Minute, MaxQueue: 10000, MaxBatch: 100}}, "bench:5000", slog.New(slog.DiscardHandler))
		}
		h := newHandler(b, Options{Events: events})
		m := imageManifest(b, h, "bench/app", nil)
		putManifest(b, h, "bench/app", "v1", m)
		blob := pushBlob(b, h, "bench/app", []byte("4 bytes"))
		for _, rq := range []request{
			{method: http.MethodGet, target: "/v2/bench/app/manifests/v1"},
			{method: http.MethodHead, target: "/v2/bench/app/manifests/v1"},
			{method: http.MethodHead, target: "/v2/bench/app/blobs/" + blob.String()},
		} {
			b.Run(mode+"/"+rq.method+"-"+map[bool]string{true: "blob", false: "manifest"}[rq.target[len(rq.target)-2:] != "v1"], func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					req := httptest.NewRequest(rq.method, rq.target, nil)
					h.ServeHTTP(httptest.NewRecorder(), req)
				}
			})
		}
		events.Close(b.Context())
	}
}
