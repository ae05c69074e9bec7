package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	"github.com/lading-registry/lading/registry"
)

// clientBody reads a request body on the registry's behalf and remembers
// whether reading failed, so that when a registry call fails because the
// client disconnected, sent a short or over-long chunk, or exceeded a
// limit, the answer is a 4xx and not a 500. With a declared length it
// yields exactly that many bytes or fails.
type clientBody struct {
	r         io.Reader
	remaining int64 // bytes still expected; -1: until EOF
	err       error
}

var (
	errChunkLong  = errors.New("request body is longer than its Content-Range")
	errChunkShort = errors.New("request body is shorter than its Content-Range")
)

func newClientBody(r io.Reader, length int64) *clientBody {
	return &clientBody{r: r, remaining: length}
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.remaining == 0 {
		var probe [1]byte
		n, err := io.ReadFull(b.r, probe[:])
		if n > 0 {
			b.err = errChunkLong
			return 0, b.err
		}
		if err != nil && err != io.EOF {
			b.err = err
			return 0, err
		}
		return 0, io.EOF
	}
	if b.remaining > 0 && int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.r.Read(p)
	if b.remaining > 0 {
		b.remaining -= int64(n)
	}
	switch {
	case err == io.EOF && b.remaining > 0:
		b.err = errChunkShort
		return n, b.err
	case err != nil && err != io.EOF:
		b.err = err
	}
	return n, err
}

// blame turns a registry call's outcome into the client's error when
// reading the body failed: 413 for a body over a limit, otherwise 400 with
// code. A failed read counts even when the registry call succeeded, since
// a reader may take an early end for the end. Otherwise err is returned
// unchanged.
func (b *clientBody) blame(ctx context.Context, err error, code registry.Code) error {
	cause := b.err
	if cause == nil {
		if err != nil && errors.Is(ctx.Err(), context.Canceled) {
			// The client hung up while its bytes were being stored:
			// WriteError answers that as such (499), not as a bad body.
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		if err != nil && ctx.Err() != nil {
			cause = ctx.Err()
		}
	}
	if cause == nil {
		return err
	}
	var blobBig *blobLimitError
	if errors.As(cause, &blobBig) {
		return blobTooLarge(blobBig.max)
	}
	var tooBig *http.MaxBytesError
	if errors.As(cause, &tooBig) {
		return withStatus(http.StatusRequestEntityTooLarge, code, "request body exceeds %d bytes", tooBig.Limit)
	}
	if errors.Is(cause, os.ErrDeadlineExceeded) {
		return withStatus(http.StatusRequestTimeout, code, "request body stalled: %v", withoutAddresses(cause))
	}
	return withStatus(http.StatusBadRequest, code, "reading the request body: %v", withoutAddresses(cause))
}

// withoutAddresses drops the addresses a network error names ("read tcp
// 10.0.0.7:5000->…: connection reset by peer"): behind a load balancer
// they are the server's own, which its answers do not give away.
func withoutAddresses(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
