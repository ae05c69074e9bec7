package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkerConnections checks the one-connection transport: requests one
// after another share a connection; a body not read to its end, a server's
// Connection: close and a cancelled request each cost it, and the next
// request dials again.
func TestWorkerConnections(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/close":
			w.Header().Set("Connection", "close")
		case "/big":
			w.Write([]byte(strings.Repeat("x", 1<<20)))
			return
		case "/slow":
			<-r.Context().Done()
			return
		}
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	ws, closeWorkers := newClient(base, newTransport()).workers(1)
	defer closeWorkers()
	c := ws[0]
	get := func(path string) {
		t.Helper()
		if _, err := c.roundTrip(newRequest(context.Background(), http.MethodGet, c.url(path), nil, 0), http.StatusOK); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want int64) {
		t.Helper()
		if got := conns.Load(); got != want {
			t.Fatalf("%d connections, want %d", got, want)
		}
	}
	for range 5 {
		get("/")
	}
	expect(1)

	resp, err := c.do(newRequest(context.Background(), http.MethodGet, c.url("/big"), nil, 0), http.StatusOK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.do(newRequest(context.Background(), http.MethodGet, c.url("/"), nil, 0), http.StatusOK); !errors.Is(err, errBusy) {
		t.Fatalf("a request while a body is open: %v, want errBusy", err)
	}
	resp.Body.Read(make([]byte, 10))
	resp.Body.Close() // cut short
	get("/")
	expect(2)

	get("/close")
	get("/")
	expect(3)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.do(newRequest(ctx, http.MethodGet, c.url("/slow"), nil, 0), http.StatusOK); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a cancelled request: %v, want the context's error", err)
	}
	get("/")
	expect(4)
}
