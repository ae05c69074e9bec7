// Package notifytest is a notification endpoint for tests: it records the
// events it is sent.
package notifytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lading-registry/lading/notify"
)

// Receiver is an endpoint on 127.0.0.1 that records the events of the
// requests it accepts, and the headers of every request.
type Receiver struct {
	URL string

	mu       sync.Mutex
	events   []notify.Event
	requests []http.Header
	answer   func(n int) int
}

// NewReceiver starts a receiver, closed when the test ends. answer, when
// not nil, gives the status of the n-th request (from 1); the events of a
// request answered other than 2xx are not recorded.
func NewReceiver(t testing.TB, answer func(n int) int) *Receiver {
	rc := &Receiver{answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.requests = append(rc.requests, r.Header.Clone())
		if rc.answer != nil {
			if status := rc.answer(len(rc.requests)); status/100 != 2 {
				w.WriteHeader(status)
				return
			}
		}
		if ct := r.Header.Get("Content-Type"); r.Method != http.MethodPost || ct != notify.MediaType {
			t.Errorf("%s with Content-Type %q, want a POST of %s", r.Method, ct, notify.MediaType)
		}
		var env notify.Envelope
		if err := json.Unmarshal(body, &env); err != nil {
			t.Errorf("not an envelope: %v: %s", err, body)
		}
		rc.events = append(rc.events, env.Events...)
	}))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL
	return rc
}

// Events returns the events received so far, in the order they came.
func (rc *Receiver) Events() []notify.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.events)
}

// Requests returns the headers of the requests received so far.
func (rc *Receiver) Requests() []http.Header {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.requests)
}

// WaitFor returns the events received once there are at least n, failing
// the test if they do not come within 10 seconds.
func (rc *Receiver) WaitFor(t testing.TB, n int) []notify.Event {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got := rc.Events()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d events, want %d:%s", len(got), n, Describe(got))
		}
	}
}

// Describe lists events one a line, for a test's message.
func Describe(events []notify.Event) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "\n  %s %s %s tag=%q from=%q", e.Action, e.Target.Repository, e.Target.Digest, e.Target.Tag, e.Target.FromRepository)
	}
	return b.String()
}
