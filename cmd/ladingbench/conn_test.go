package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
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
	c := workerOf(t, srv, &conns)
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

// TestWorkerConnectionElsewhere checks that a redirect to another host
// goes there (through the pooled transport), and that a keep-alive
// connection the server dropped while idle costs the next GET nothing.
func TestWorkerConnectionElsewhere(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("elsewhere"))
	}))
	defer other.Close()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, other.URL+"/x", http.StatusTemporaryRedirect)
		case "/drop":
			// Answer as if the connection stayed open, then drop it.
			w.Header().Set("Content-Length", "2")
			w.Write([]byte("ok"))
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			io.Copy(io.Discard, r.Body)
			w.Write([]byte("here"))
		}
	}))
	c := workerOf(t, srv, &conns)
	body := func(req *http.Request) string {
		t.Helper()
		resp, err := c.do(req, http.StatusOK)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := body(newRequest(context.Background(), http.MethodGet, c.url("/redirect"), nil, 0)); got != "elsewhere" {
		t.Fatalf("after a redirect to another host: %q", got)
	}
	if got := body(newRequest(context.Background(), http.MethodGet, c.url("/drop"), nil, 0)); got != "ok" {
		t.Fatalf("/drop: %q", got)
	}
	time.Sleep(20 * time.Millisecond) // the close reaches the client
	if got := body(newRequest(context.Background(), http.MethodGet, c.url("/"), nil, 0)); got != "here" {
		t.Fatalf("after the server dropped the connection: %q", got)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestRepeatFor(t *testing.T) {
	const n, conc = 3, 4
	var mu sync.Mutex
	seen := map[int]int{}
	workers := map[int]int{}
	record := func(_ context.Context, w, i int) error {
		mu.Lock()
		defer mu.Unlock()
		seen[i]++
		workers[w]++
		time.Sleep(time.Millisecond)
		return nil
	}
	calls := func() (sum int) {
		for _, k := range seen {
			sum += k
		}
		return sum
	}
	lat, wall, err := repeatFor(context.Background(), conc, n, 0, record)
	if err != nil || len(lat) != n || len(seen) != n || len(workers) > n {
		t.Fatalf("d=0: %d calls, %v seen, %d workers, err %v; want each of %d once", len(lat), seen, len(workers), err, n)
	}

	// With d, the calls go on until d has passed, however few of them a
	// loaded machine fits in it.
	clear(seen)
	clear(workers)
	lat, wall, err = repeatFor(context.Background(), conc, n, 60*time.Millisecond, record)
	if err != nil || wall < 60*time.Millisecond || len(seen) != n || len(lat) != calls() {
		t.Fatalf("d=60ms: %d calls (%v seen) in %v, err %v", len(lat), seen, wall, err)
	}

	// Given time, every worker takes turns and the indexes come round
	// again; the test ends the run once they have, rather than guess how
	// long a loaded machine needs.
	clear(seen)
	clear(workers)
	ctx, done := context.WithCancel(context.Background())
	defer done()
	enough := false
	lat, wall, err = repeatFor(ctx, conc, n, 30*time.Second, func(_ context.Context, w, i int) error {
		mu.Lock()
		seen[i]++
		workers[w]++
		enough = len(workers) == conc && len(seen) == n
		for _, k := range workers {
			enough = enough && k >= 2
		}
		for _, k := range seen {
			enough = enough && k >= 4
		}
		if enough {
			done()
		}
		mu.Unlock()
		time.Sleep(time.Millisecond) // a turn for the other workers
		return nil
	})
	if err != nil || !enough || wall >= 30*time.Second || len(lat) != calls() {
		t.Fatalf("d=30s: %d calls in %v, %v seen, workers %v, err %v; want each of %d workers twice and each of %d indexes 4 times, then a stop when cancelled",
			len(lat), wall, seen, workers, err, conc, n)
	}
	for w := range workers {
		if w < 0 || w >= conc {
			t.Fatalf("worker %d of %d: %v", w, conc, workers)
		}
	}
	for i := range seen {
		if i < 0 || i >= n {
			t.Fatalf("index %d called, of %d: %v", i, n, seen)
		}
	}

	stop := errors.New("stop")
	_, _, err = repeatFor(context.Background(), conc, n, time.Hour, func(_ context.Context, _, i int) error {
		if i == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("a failed call: %v", err)
	}
}

// workerOf starts srv, counting its connections in conns, and returns one
// worker's client of it.
func workerOf(t *testing.T, srv *httptest.Server, conns *atomic.Int64) *client {
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	ws, closeWorkers := newClient(base, newTransport()).workers(1)
	t.Cleanup(closeWorkers)
	return ws[0]
}

// TestWorkerConnectionNeverSendsAWriteTwice: a server that takes a POST
// whole and drops the connection without an answer may have acted on it,
// so the POST fails instead of going again; and a body closed before its
// end does not wait for the rest.
func TestWorkerConnectionNeverSendsAWriteTwice(t *testing.T) {
	var posts atomic.Int64
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			io.Copy(io.Discard, r.Body)
			posts.Add(1)
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
		case r.URL.Path == "/endless":
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			w.Write([]byte("ok"))
		}
	}))
	c := workerOf(t, srv, &conns)
	if _, err := c.roundTrip(newRequest(context.Background(), http.MethodGet, c.url("/"), nil, 0), http.StatusOK); err != nil {
		t.Fatal(err)
	}
	_, err := c.roundTrip(newRequest(context.Background(), http.MethodPost, c.url("/"), strings.NewReader("payload"), 7), http.StatusCreated)
	if err == nil {
		t.Fatal("a POST the server dropped succeeded")
	}
	if n := posts.Load(); n != 1 {
		t.Fatalf("the server took the POST %d times", n)
	}

	resp, err := c.do(newRequest(context.Background(), http.MethodGet, c.url("/endless"), nil, 0), http.StatusOK)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 1))
	closed := make(chan struct{})
	go func() { resp.Body.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("closing a body cut short waits for the rest of it")
	}
	if _, err := c.roundTrip(newRequest(context.Background(), http.MethodGet, c.url("/"), nil, 0), http.StatusOK); err != nil {
		t.Fatal(err)
	}
}
