package proxy

import (
	"context"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/server"
)

// FetchBlob implements server.Mirror. Each request for a missing blob
// fetches it: no request waits for another's download, and the first
// commit stores it while the others find it stored (content addressing
// makes them the same bytes). Docker Hub's pull limits count manifests,
// not blobs; a client pulling one image asks for each blob once.
func (m *Mirror) FetchBlob(ctx context.Context, repo string, d digest.Digest) (server.BlobFill, error) {
	r, err := m.reg.Repository(repo)
	if err != nil {
		return nil, err
	}
	resp, err := m.up.do(ctx, http.MethodGet, repo, "blobs/"+d.String(), "")
	m.obs.Upstream("blob_get", string(outcomeOf(err)))
	if err != nil {
		return nil, m.blobFailed(repo, d, err)
	}
	if resp.ContentLength < 0 {
		resp.Body.Close()
		return nil, &registry.Error{Code: registry.CodeUnavailable, Message: "the upstream gave no length for blob " + d.String()}
	}
	m.obs.Lookup("blob", "miss")
	return &blobFill{ctx: ctx, m: m, blobs: r.Blobs(), d: d, size: resp.ContentLength, body: resp.Body}, nil
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
	if err != nil {
		return err
	}
	return src.release()
}

func (f *blobFill) Close() error { return f.body.Close() }

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
