package proxy

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/server"
)

// FetchBlob implements server.Mirror. The first request for a missing
// blob fetches it, streaming it to its client while it is stored. Others
// for the same blob meanwhile wait for that fetch, with no bytes, for up
// to followWait, then answer server.ErrFetchedMeanwhile so that their
// handler reads the store again: a DaemonSet's nodes pulling one image
// through the mirror fetch each layer once, not once a node. Past the
// wait (a large blob, a slow upstream) a request fetches the blob itself,
// as it would without the first: its client is not held without bytes
// for longer. Content addressing makes the copies the same bytes.
func (m *Mirror) FetchBlob(ctx context.Context, repo string, d digest.Digest) (server.BlobFill, error) {
	r, err := m.reg.Repository(repo)
	if err != nil {
		return nil, err
	}
	key := repo + "@" + d.String()
	end, first := m.blobs.join(key)
	if !first {
		t := time.NewTimer(followWait)
		defer t.Stop()
		select {
		case <-end:
			m.obs.Lookup("blob", "waited")
			return nil, server.ErrFetchedMeanwhile
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	done := func() {}
	if first {
		done = sync.OnceFunc(func() { m.blobs.leave(key) })
	}
	resp, err := m.up.do(ctx, http.MethodGet, repo, "blobs/"+d.String(), "")
	m.obs.Upstream("blob_get", string(outcomeOf(err)))
	if err != nil {
		done()
		return nil, m.blobFailed(repo, d, err)
	}
	if resp.ContentLength < 0 {
		resp.Body.Close()
		done()
		return nil, &registry.Error{Code: registry.CodeUnavailable, Message: "the upstream gave no length for blob " + d.String()}
	}
	m.obs.Lookup("blob", "miss")
	return &blobFill{ctx: ctx, m: m, blobs: r.Blobs(), d: d, size: resp.ContentLength, body: resp.Body, done: done}, nil
}

// followWait bounds how long a request for a blob waits for another's
// fetch of it: long enough for most layers, short of clients' patience
// for the first byte. A variable for the tests.
var followWait = 10 * time.Second

// blobFlights are the blob fetches under way, by repository and digest,
// each with a channel closed when it ends, stored or not.
type blobFlights struct {
	mu       sync.Mutex
	underway map[string]chan struct{}
}

// join returns the channel of key's fetch under way, or, first true, makes
// the caller's the one under way.
func (f *blobFlights) join(key string) (end <-chan struct{}, first bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ch, ok := f.underway[key]; ok {
		return ch, false
	}
	if f.underway == nil {
		f.underway = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	f.underway[key] = ch
	return ch, true
}

// leave ends key's fetch: those waiting read the store.
func (f *blobFlights) leave(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.underway[key])
	delete(f.underway, key)
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
	done  func() // ends the fetch for those waiting on it
}

func (f *blobFill) Size() int64 { return f.size }

// CopyTo stores the blob through the registry's upload path (written,
// hashed once as it arrives, verified, then moved to its address), and
// hands every byte to w as it passes but the last, which waits for the
// commit: on a digest mismatch or a failed write the client's body stays
// one byte short, and nothing is stored.
func (f *blobFill) CopyTo(w io.Writer) error {
	defer f.done()
	defer f.body.Close()
	src := &holdLast{r: f.body, w: w, size: f.size}
	_, err := f.blobs.Put(f.ctx, f.d, src)
	f.m.obs.Fetched("blob", src.n)
	if err != nil {
		return err
	}
	return src.release()
}

func (f *blobFill) Close() error {
	defer f.done()
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
