package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"
)

// connTransport is an http.RoundTripper over one keep-alive connection,
// for one worker's requests one after another. net/http's Transport
// serves concurrent callers from a pool: each request is handed to the
// connection's reading and writing goroutines and back over channels,
// which on a machine the client shares with the server took over a third
// of the CPU in the small-request scenarios, CPU the servers under test
// then lacked. Requests and responses are still written and parsed by
// net/http (Request.Write, ReadResponse); only the pool is left out, as a
// client with one connection per worker needs none. Requests for another
// host (a redirect to a CDN, say) go through other, the pooled transport.
type connTransport struct {
	addr    string // host:port
	other   http.RoundTripper
	timeout time.Duration // of each request, body included
	conn    net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	busy    bool  // a response body is still open
	fresh   bool  // the connection was dialed for the current request
	got     int64 // bytes read from the connection
	before  int64 // got when the current request was sent
}

// counter counts what its connection reads.
type counter struct {
	net.Conn
	t *connTransport
}

func (c counter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.t.got += int64(n)
	return n, err
}

var errBusy = errors.New("connTransport: the previous response body is still open")

func (t *connTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || hostPort(req.URL.Host, "80") != t.addr {
		return t.elsewhere(req)
	}
	if t.busy {
		closeBody(req)
		return nil, errBusy
	}
	resp, err := t.exchange(req)
	if err != nil && t.stale(err) && replayable(req) && req.Context().Err() == nil {
		// Most likely a keep-alive connection the server had closed while
		// idle; a request that changes nothing goes again on a new one,
		// as with net/http's Transport. Others fail: the server may have
		// acted on them before it dropped the connection.
		if req, err = rewound(req); err == nil {
			resp, err = t.exchange(req)
		}
	}
	return resp, err
}

// replayable is net/http's rule for a request that may be sent again.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	}
	return false
}

// elsewhere sends a request for another host (a redirect to a CDN, say)
// through the pooled transport, with the same deadline.
func (t *connTransport) elsewhere(req *http.Request) (*http.Response, error) {
	if t.timeout <= 0 {
		return t.other.RoundTrip(req)
	}
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := t.other.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// exchange sends req on the connection, dialing one first when there is
// none, and reads the response head.
func (t *connTransport) exchange(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if t.conn == nil {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", t.addr)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		t.conn, t.br, t.bw = c, bufio.NewReaderSize(counter{c, t}, 64<<10), bufio.NewWriterSize(c, 64<<10)
		t.fresh = true
	} else {
		t.fresh = false
	}
	conn := t.conn
	var deadline time.Time // none
	if t.timeout > 0 {
		deadline = time.Now().Add(t.timeout)
	}
	conn.SetDeadline(deadline)
	// A cancelled request unblocks at once, and its connection is not
	// used again.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	t.before = t.got - int64(t.br.Buffered())
	err := req.Write(t.bw) // closes the body
	if err == nil {
		err = t.bw.Flush()
	}
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(t.br, req)
	} else if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		if r, rerr := http.ReadResponse(t.br, req); rerr == nil {
			// The server answered before taking the whole body (a 413, a
			// 401) and closed: its answer says more than the broken pipe.
			r.Close, resp, err = true, r, nil
		}
	}
	if err != nil {
		stop()
		t.close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, err
	}
	t.busy = true
	resp.Body = &connBody{body: resp.Body, t: t, stop: stop, reuse: !resp.Close && !req.Close}
	return resp, nil
}

// stale reports whether err is a reused connection's failure before a
// byte of the answer came: the server had closed it while idle.
func (t *connTransport) stale(err error) bool {
	if t.fresh || t.got != t.before {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// rewound returns req ready to be sent again, or an error when its body
// cannot be read again.
func rewound(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("connTransport: the server closed the connection and the request body cannot be sent again")
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Body = body
	return r, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func (t *connTransport) close() {
	if t.conn != nil {
		t.conn.Close()
		t.conn, t.br, t.bw = nil, nil, nil
	}
}

// connBody hands the connection back when the body is closed: for the
// next request if it was read to its end, to be closed otherwise.
type connBody struct {
	body  io.ReadCloser
	t     *connTransport
	stop  func() bool
	reuse bool
	eof   bool
	done  bool
}

func (b *connBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *connBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	b.t.busy = false
	if !b.stop() || !b.eof || !b.reuse || b.t.br == nil || b.t.br.Buffered() > 0 {
		// Cancelled, cut short, the server's last answer, or followed by
		// bytes no request asked for. The connection goes first, so that
		// closing the body does not read the rest of it.
		b.t.close()
		b.body.Close()
		return nil
	}
	return b.body.Close()
}

// hostPort is host with port added when it names none.
func hostPort(host, port string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return net.JoinHostPort(host, port)
}

// workers returns n clients for n workers' requests, each with a
// connection of its own (see connTransport); close drops them. Over https
// they share c, and so net/http's pool: compare registries over the same
// scheme.
func (c *client) workers(n int) (ws []*client, close func()) {
	ws = make([]*client, n)
	if c.base.Scheme != "http" {
		for i := range ws {
			ws[i] = c
		}
		return ws, func() {}
	}
	ts := make([]*connTransport, n)
	for i := range ws {
		ts[i] = &connTransport{addr: hostPort(c.base.Host, "80"), other: c.hc.Transport, timeout: c.hc.Timeout}
		ws[i] = &client{base: c.base, hc: &http.Client{Transport: ts[i]}}
	}
	return ws, func() {
		for _, t := range ts {
			t.close()
		}
	}
}
