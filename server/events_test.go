package server

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/lading-registry/lading/notify"
	"github.com/lading-registry/lading/notify/notifytest"
)

// Reads that tell of a pull: a whole body sent, or the range that ends
// the blob. Not a HEAD, a 304, nor a range short of the end.
func TestBlobReadEvents(t *testing.T) {
	rc := notifytest.NewReceiver(t, nil)
	events := notify.New([]notify.EndpointConfig{{Name: "r", URL: rc.URL, Timeout: 5 * time.Second, Backoff: time.Millisecond,
		MaxBackoff: time.Millisecond, MaxQueue: 100, MaxBatch: 1}}, "", slog.New(slog.DiscardHandler))
	defer events.Close(context.Background())
	h := newHandler(t, Options{Events: events})
	d := pushBlob(t, h, "a", []byte("0123456789"))
	empty := pushBlob(t, h, "a", []byte{})
	blob := "/v2/a/blobs/" + d.String()
	for _, rq := range []request{
		{method: http.MethodHead, target: blob},
		{method: http.MethodGet, target: blob, header: map[string]string{"If-None-Match": etagOf(d)}},
		{method: http.MethodGet, target: blob, header: map[string]string{"Range": "bytes=0-4"}},
		{method: http.MethodGet, target: blob, header: map[string]string{"Range": "bytes=5-"}}, // a pull
		{method: http.MethodGet, target: blob},                                                 // a pull
		{method: http.MethodGet, target: "/v2/a/blobs/" + empty.String()},                      // a pull
		{method: http.MethodDelete, target: "/v2/a/manifests/nosuchtag"},
	} {
		serve(t, h, rq)
	}
	rc.WaitFor(t, 5)
	time.Sleep(50 * time.Millisecond)
	got := rc.Events()
	if len(got) != 5 {
		t.Fatalf("events:%s", notifytest.Describe(got))
	}
	for i, want := range []struct {
		action string
		size   int64
	}{{notify.ActionPush, 10}, {notify.ActionPush, 0}, {notify.ActionPull, 10}, {notify.ActionPull, 10}, {notify.ActionPull, 0}} {
		if got[i].Action != want.action || got[i].Target.Size != want.size {
			t.Errorf("event %d: %s of %d bytes, want %s of %d", i, got[i].Action, got[i].Target.Size, want.action, want.size)
		}
	}
}
