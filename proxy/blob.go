package proxy

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/server"
)

// FetchBlob implements server.Mirror. The first request for a missing
// blob fetches it, streaming it to its client while it is stored. Others
// for the same blob meanwhile wait for that fetch, with no bytes, for up
// to followWait in all: a DaemonSet's nodes pulling one image through the
// mirror fetch each layer once, not once a node. When it stored the blob
// they answer server.ErrFetchedMeanwhile, and their handler reads the
// store; when the upstream refused it (unknown, rate limited, down) they
// answer the same; when it was cut short by its own client, one of them
// fetches it. Past the wait (a large blob, a slow upstream) a request
// fetches the blob itself, as it would without the first: its client is
// not held without bytes for longer. Content addressing makes the copies
// the same bytes.
func (m *Mirror) FetchBlob(ctx context.Context, repo string, d digest.Digest) (fill server.BlobFill, err error) {
	r, err := m.reg.Repository(repo)
	if err != nil {
		return nil, err
	}
	key := repo + "@" + d.String()
	var lead *blobFlight
	wait := time.NewTimer(followWait)
	defer wait.Stop()
	for lead == nil {
		f, first := m.blobs.join(key)
		if first {
			lead = f
			break
		}
		select {
		case <-f.end:
			if f.stored {
				m.obs.Lookup("blob", "waited")
				return nil, server.ErrFetchedMeanwhile
			}
			if f.err != nil {
				return nil, f.err
			}
			continue // cut short by its client: take it up
		case <-wait.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		break // past the wait: a fetch of this request's own
	}
	end := func(stored bool, err error) {}
	if lead != nil {
		end = func(stored bool, err error) { m.blobs.leave(key, lead, stored, err) }
		// Every way out without a fill ends the fetch, a panic's too (the
		// first end counts).
		defer func() {
			if fill == nil {
				end(false, nil)
			}
		}()
		// A fetch that ended between this request's miss and its join
		// stored the blob already.
		if _, err := r.Blobs().Stat(ctx, d); err == nil {
			end(true, nil)
			return nil, server.ErrFetchedMeanwhile
		}
	}
	// Its own context, so that an upstream gone quiet mid-blob ends the
	// fetch (idleBody) rather than hold its client and those waiting.
	fctx, cancel := context.WithCancel(ctx)
	resp, err := m.up.do(fctx, http.MethodGet, repo, "blobs/"+d.String(), "")
	m.obs.Upstream("blob_get", string(outcomeOf(err)))
	if err != nil {
		cancel()
		err = m.blobFailed(repo, d, err)
		if ctx.Err() != nil {
			end(false, nil) // this request's own end, not the upstream's word
		} else {
			end(false, err)
		}
		return nil, err
	}
	if resp.ContentLength < 0 {
		resp.Body.Close()
		cancel()
		err := &registry.Error{Code: registry.CodeUnavailable, Message: "the upstream gave no length for blob " + d.String()}
		end(false, err)
		return nil, err
	}
	m.obs.Lookup("blob", "miss")
	return &blobFill{ctx: ctx, m: m, blobs: r.Blobs(), d: d, size: resp.ContentLength, body: newIdleBody(resp.Body, cancel), end: end}, nil
}

// upstreamIdle is how long a blob's body from the upstream may send
// nothing before its fetch is given up. A variable for the tests.
var upstreamIdle = time.Minute

// idleBody is an upstream body whose request is cancelled once a read has
// waited upstreamIdle for a byte: the transport bounds the wait for
// headers only. Only the reads' waits count, not the time between them,
// which a slow client (each piece goes to it before the next is read) or
// a busy store may take.
type idleBody struct {
	io.ReadCloser
	quiet   *time.Timer
	cancel  context.CancelFunc
	reading atomic.Bool
}

func newIdleBody(body io.ReadCloser, cancel context.CancelFunc) *idleBody {
	b := &idleBody{ReadCloser: body, cancel: cancel}
	b.quiet = time.AfterFunc(time.Hour, func() {
		if b.reading.Load() {
			cancel()
		}
	})
	b.quiet.Stop()
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.reading.Store(true)
	b.quiet.Reset(upstreamIdle)
	n, err := b.ReadCloser.Read(p)
	b.reading.Store(false)
	b.quiet.Stop()
	return n, err
}

func (b *idleBody) Close() error {
	b.quiet.Stop()
	b.cancel()
	return b.ReadCloser.Close()
}

// followWait bounds how long a request for a blob waits for others'
// fetches of it, in all: long enough for most layers, short of clients'
// patience for the first byte. A variable for the tests.
var followWait = 10 * time.Second

// blobFlights are the blob fetches under way, by repository and digest.
type blobFlights struct {
	mu       sync.Mutex
	underway map[string]*blobFlight
}

// blobFlight is one fetch under way; end is closed when it ends, with
// stored or err telling how (neither: cut short by its own client).
type blobFlight struct {
	end    chan struct{}
	stored bool
	err    error
}

// join returns key's fetch under way, or, first true, makes the caller's
// the one under way.
func (f *blobFlights) join(key string) (flight *blobFlight, first bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl, ok := f.underway[key]; ok {
		return fl, false
	}
	if f.underway == nil {
		f.underway = map[string]*blobFlight{}
	}
	fl := &blobFlight{end: make(chan struct{})}
	f.underway[key] = fl
	return fl, true
}

// leave ends key's fetch fl, once, telling those waiting how it went.
func (f *blobFlights) leave(key string, fl *blobFlight, stored bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.underway[key] != fl {
		return // ended already
	}
	fl.stored, fl.err = stored, err
	delete(f.underway, key)
	close(fl.end)
}

// blobFill is a blob on its way from the upstream to a client and into
// the store.
type blobFill struct {
	ctx   context.Context
	m     *Mirror
	blobs *registry.BlobStore
	d     digest.Digest
	size  int64
	body  io.ReadCloser
	// end ends the fetch for those waiting on it, with how it went; the
	// first call counts.
	end func(stored bool, err error)
}

func (f *blobFill) Size() int64 { return f.size }

// CopyTo stores the blob through the registry's upload path (written,
// hashed once as it arrives, verified, then moved to its address), and
// hands every byte to w as it passes but the last, which waits for the
// commit: on a digest mismatch or a failed write the client's body stays
// one byte short, and nothing is stored.
func (f *blobFill) CopyTo(w io.Writer) error {
	defer f.body.Close()
	src := &holdLast{r: f.body, w: w, size: f.size}
	_, err := f.blobs.Put(f.ctx, f.d, src)
	f.m.obs.Fetched("blob", src.n)
	switch {
	case err == nil:
		f.end(true, nil)
	case src.clientGone || f.ctx.Err() != nil:
		f.end(false, nil) // its client's end: another request takes it up
	default:
		// The upstream's bytes (damaged, cut) or the store failed: the
		// requests waiting would meet the same.
		f.end(false, &registry.Error{Code: registry.CodeUnavailable, Message: "blob " + f.d.String() + " could not be fetched from the upstream and stored; try again"})
	}
	if err != nil {
		return err
	}
	return src.release()
}

func (f *blobFill) Close() error {
	f.end(false, nil)
	return f.body.Close()
}

// holdLast passes what it reads from r to w but the blob's last byte (at
// size), which release writes.
type holdLast struct {
	r    io.Reader
	w    io.Writer
	size int64
	n    int64
	last [1]byte
	held bool
	// clientGone says a write to w failed: the request's client left.
	clientGone bool
}

func (h *holdLast) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n == 0 {
		return n, err
	}
	out := p[:n]
	if h.n+int64(n) >= h.size {
		out = p[:n-1]
		h.last[0], h.held = p[n-1], true
	}
	h.n += int64(n)
	if len(out) > 0 {
		if _, werr := h.w.Write(out); werr != nil {
			h.clientGone = true
			return 0, werr
		}
	}
	return n, err
}

// release writes the byte held back.
func (h *holdLast) release() error {
	if !h.held {
		return nil
	}
	h.held = false
	_, err := h.w.Write(h.last[:])
	return err
}
