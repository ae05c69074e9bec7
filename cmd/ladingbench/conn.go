package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// connTransport is an http.RoundTripper over one keep-alive connection,
// for one worker's requests one after another. net/http's Transport
// serves concurrent callers from a pool, at the cost of two goroutines and
// their channel hand-offs per request: on a machine the client shares with
// the server, the small-request scenarios spent over a third of the CPU in
// the client that way, CPU the servers under test then lacked. Requests and
// responses are still written and parsed by net/http (Request.Write,
// ReadResponse); only the pooling is left out, as a client with one
// connection per worker needs none.
type connTransport struct {
	addr string // host:port
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	busy bool // a response body is still open
}

var errBusy = errors.New("connTransport: the previous response body is still open")

func (t *connTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.busy {
		return nil, errBusy
	}
	ctx := req.Context()
	if t.conn == nil {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", t.addr)
		if err != nil {
			return nil, err
		}
		t.conn, t.br, t.bw = c, bufio.NewReaderSize(c, 64<<10), bufio.NewWriterSize(c, 64<<10)
	}
	conn := t.conn
	// A cancelled request unblocks at once, and its connection is not
	// used again.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	err := req.Write(t.bw)
	if err == nil {
		err = t.bw.Flush()
	}
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(t.br, req)
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
	err := b.body.Close()
	if !b.stop() || !b.eof || !b.reuse {
		// Cancelled, cut short, or the server's last answer.
		b.t.close()
	}
	b.t.busy = false
	return err
}

// workers returns n clients for n workers' requests, each with a
// connection of its own (see connTransport); close drops them. Over https
// they share c.
func (c *client) workers(n int) (ws []*client, close func()) {
	ws = make([]*client, n)
	if c.base.Scheme != "http" {
		for i := range ws {
			ws[i] = c
		}
		return ws, func() {}
	}
	host := c.base.Host
	if c.base.Port() == "" {
		host = net.JoinHostPort(c.base.Hostname(), "80")
	}
	ts := make([]*connTransport, n)
	for i := range ws {
		ts[i] = &connTransport{addr: host}
		ws[i] = &client{base: c.base, hc: &http.Client{Transport: ts[i]}}
	}
	return ws, func() {
		for _, t := range ts {
			t.close()
		}
	}
}
