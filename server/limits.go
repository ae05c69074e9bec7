package server

import (
	"io"
	"net/http"
	"time"

	"github.com/lading-registry/lading/internal/httpx"
	"github.com/lading-registry/lading/registry"
)

// Defaults of the limits in Options, used where a field is zero.
const (
	// DefaultMaxUploads bounds the upload requests served at once. Each
	// holds up to 3 MiB of copy buffers and a backend writer (and over
	// HTTP/2, while storage lags, up to 4 MiB of body not read yet), so
	// the default keeps both in the hundreds of megabytes and descriptors.
	DefaultMaxUploads = 128
	// DefaultBodyIdleTimeout is how long a request body may stall between
	// bytes: long enough for a congested client, short enough that a
	// stalled one gives back its upload slot, goroutine and descriptor.
	DefaultBodyIdleTimeout = time.Minute
)

var errTooManyUploads = &registry.Error{Code: registry.CodeTooManyRequests,
	Message: "too many uploads in progress; retry later"}

// uploadSlots counts upload requests in progress; nil means no limit.
type uploadSlots chan struct{}

func newUploadSlots(n int) uploadSlots {
	if n < 0 {
		return nil
	}
	if n == 0 {
		n = DefaultMaxUploads
	}
	return make(uploadSlots, n)
}

// take claims a slot without waiting: a client told to come back holds
// nothing, where one queued would hold its connection and body.
func (s uploadSlots) take() (release func(), ok bool) {
	if s == nil {
		return func() {}, true
	}
	select {
	case s <- struct{}{}:
		return func() { <-s }, true
	default:
		return nil, false
	}
}

// streamsBlob reports whether the request carries blob bytes into storage:
// a chunk, a final PUT, or a monolithic POST.
func streamsBlob(rt Route, r *http.Request) bool {
	switch rt.Name {
	case RouteUpload:
		return r.Method == http.MethodPatch || r.Method == http.MethodPut
	case RouteUploadStart:
		return r.ContentLength != 0
	}
	return false
}

// readsBody reports whether the endpoint reads the request body at all.
func readsBody(rt Route, r *http.Request) bool {
	return streamsBlob(rt, r) || rt.Name == RouteManifest && r.Method == http.MethodPut
}

// limit applies the per-request limits before the endpoint runs: an upload
// slot for requests that stream a blob, and the idle deadline of a body
// the endpoint will read. It returns false when it answered the request.
func (h *handlers) limit(w http.ResponseWriter, r *http.Request, rt Route) (release func(), ok bool) {
	release = func() {}
	if streamsBlob(rt, r) {
		if release, ok = h.uploads.take(); !ok {
			writeError(w, r, h.log, errTooManyUploads) // with a Retry-After
			return nil, false
		}
	}
	if timeout := h.opts.BodyIdleTimeout; timeout > 0 && readsBody(rt, r) {
		switch {
		case watched(r.Body):
			// On HTTP/2 behind BoundBodies: bounded once is enough.
		case r.ProtoMajor >= 2:
			r.Body = newWatchedBody(r.Body, http.NewResponseController(w), timeout)
		default:
			r.Body = &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), timeout: timeout}
		}
	}
	return release, true
}

// watched reports whether body reads through a watchedBody, under the
// counters that the access log and the metrics wrap it in.
func watched(body io.ReadCloser) bool {
	for {
		switch b := body.(type) {
		case *watchedBody:
			return true
		case *httpx.Body:
			body = b.ReadCloser
		default:
			return false
		}
	}
}

// idleBody fails a body read that waits longer than timeout for data, by
// pushing the connection's read deadline ahead as bytes arrive. At the
// body's end the server lifts the deadline itself and starts reading the
// connection in the background to notice a client hanging up; no later
// read may set one again, or work after the body (a long commit) would be
// cancelled when it passed.
type idleBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	timeout  time.Duration
	pushed   time.Time
	disabled bool
}

// deadlineSlack is how often the deadline is pushed at most: every read
// would cost a timer update, and a second is nothing against the timeout.
const deadlineSlack = time.Second

func (b *idleBody) Read(p []byte) (int, error) {
	if !b.disabled {
		if now := time.Now(); now.Sub(b.pushed) >= deadlineSlack {
			if err := b.rc.SetReadDeadline(now.Add(b.timeout)); err != nil {
				// Not a network connection (a test recorder): nothing to bound.
				b.disabled = true
			}
			b.pushed = now
		}
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.disabled = true
	}
	return n, err
}

// sendPiece is how much of a response body is handed to sendfile per
// write deadline: a client must take this much per BodyIdleTimeout (1 MiB
// a minute by default, 17 KiB/s), since the kernel's copy cannot be
// watched for progress; smaller pieces would cost fast pulls a system call
// and a deadline each. Bodies written from buffers (TLS, HTTP/2, small
// ones) go in writePieces, which a client slower than 1 KiB/s can still
// take in time.
const (
	sendPiece  = 1 << 20
	writePiece = 64 << 10
)

// stallGuard returns the writer a response body goes through when the
// client must keep taking bytes: a client that stops reading for
// BodyIdleTimeout loses the connection, rather than holding the handler's
// goroutine, its file and its connection for ever. net/http lifts the
// deadline once the response is done, before the connection's next request.
func (h *handlers) stallGuard(w http.ResponseWriter, r *http.Request) io.Writer {
	if h.opts.BodyIdleTimeout <= 0 {
		return w
	}
	g := &idleWriter{w: w, rc: http.NewResponseController(w), timeout: h.opts.BodyIdleTimeout}
	if r.ProtoMajor >= 2 {
		g.watch = newStallWatch(g.timeout, func() { _ = g.rc.SetWriteDeadline(past) })
	}
	return g
}

// idleWriter pushes the connection's write deadline ahead of every write,
// and splits a ReadFrom into pieces of sendPiece bytes so that each gets
// its own deadline while keeping the zero-copy path: a piece of an
// *io.LimitedReader over a file is again an *io.LimitedReader over that
// file, which net/http hands to sendfile.
type idleWriter struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	timeout  time.Duration
	disabled bool
	// watch bounds each write instead on HTTP/2, where a deadline would
	// also count the reads of storage between writes (see stallWatch).
	watch *stallWatch
}

// begin gives the next write its deadline, or on HTTP/2 marks it waiting
// until end.
func (g *idleWriter) begin() {
	if g.watch != nil {
		g.watch.begin()
		return
	}
	if !g.disabled && g.rc.SetWriteDeadline(time.Now().Add(g.timeout)) != nil {
		g.disabled = true
	}
}

func (g *idleWriter) end() {
	if g.watch != nil {
		g.watch.end()
	}
}

func (g *idleWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return g.w.Write(p) // sends the header, if not yet
	}
	var total int
	for len(p) > 0 {
		piece := p[:min(len(p), writePiece)]
		g.begin()
		n, err := g.w.Write(piece)
		g.end()
		total += n
		if err != nil {
			return total, err
		}
		p = p[n:]
	}
	return total, nil
}

func (g *idleWriter) ReadFrom(src io.Reader) (int64, error) {
	lr, ok := src.(*io.LimitedReader)
	rf, canReadFrom := g.w.(io.ReaderFrom)
	if !ok || !canReadFrom {
		buf := make([]byte, 32<<10)
		return io.CopyBuffer(writeOnly{g}, src, buf)
	}
	var total int64
	for lr.N > 0 {
		g.begin()
		n, err := rf.ReadFrom(&io.LimitedReader{R: lr.R, N: min(lr.N, sendPiece)})
		g.end()
		lr.N -= n
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
	return total, nil
}

// writeOnly hides idleWriter's ReadFrom from io.CopyBuffer.
type writeOnly struct{ io.Writer }

// BoundBodies bounds the wait for any request body to timeout, whatever
// the endpoint (0: no bound). net/http reads a body the endpoint left
// unread (a 401 or 404 to a request that declared one) before it answers,
// to keep the connection; with no deadline, a client that declares a body
// and sends none would hold its request, before any authentication, for as
// long as it liked. Endpoints that read a body push the deadline along as
// bytes arrive (idleBody); once a body has ended, net/http lifts it.
func BoundBodies(timeout time.Duration, next http.Handler) http.Handler {
	if timeout <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.ContentLength == 0:
		case r.ProtoMajor == 1:
			// Not a network connection (a test recorder): nothing to bound.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
		default:
			// HTTP/2 reads no unread body before it answers, but an
			// endpoint outside the registry's API (the token server's
			// form) may wait on one; a deadline set now would also fire
			// on a body the endpoint reads later, so each read is bounded.
			r.Body = newWatchedBody(r.Body, http.NewResponseController(w), timeout)
		}
		next.ServeHTTP(w, r)
		if r.ProtoMajor >= 2 {
			// HTTP/2 sends the end of a response (what its buffer holds)
			// after the handler returns, and the request's unread body
			// stays buffered until the stream ends: a client that never
			// takes the response must not keep either past timeout.
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout))
		}
	})
}
