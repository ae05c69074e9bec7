// Package httpx holds the response and request wrappers that the logging and
// metrics middlewares share, so a request is measured once however many
// middlewares look at it.
package httpx

import (
	"io"
	"net/http"
	"sync/atomic"
)

// Recorder remembers the status and counts the bytes of a response. It
// keeps the optional interfaces that matter to a registry: ReadFrom goes to
// the underlying writer so blob downloads still reach sendfile, Flush
// reaches the connection, and Unwrap lets http.ResponseController find
// everything else.
type Recorder struct {
	http.ResponseWriter
	status  int
	written atomic.Int64
}

// Record returns the Recorder measuring w and the writer to pass on. When
// a middleware further out already records (found through Unwrap, since
// every write passes through it), that Recorder is shared and w is passed
// on unchanged, so a response is measured once.
func Record(w http.ResponseWriter) (*Recorder, http.ResponseWriter) {
	for u := w; ; {
		if rec, ok := u.(*Recorder); ok {
			return rec, w
		}
		uw, ok := u.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		u = uw.Unwrap()
	}
	rec := &Recorder{ResponseWriter: w}
	return rec, rec
}

// Status is the response status: the first final (non-1xx) code written,
// or 200, which net/http sends when a handler writes nothing.
func (r *Recorder) Status() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// WroteHeader reports whether a status has gone out (explicitly or by a
// first write), after which an error can no longer be answered cleanly.
func (r *Recorder) WroteHeader() bool { return r.status != 0 }

// Written is the number of body bytes sent.
func (r *Recorder) Written() int64 { return r.written.Load() }

func (r *Recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *Recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.written.Add(int64(n))
	return n, err
}

// ReadFrom hands src to the underlying writer's ReadFrom when it has one:
// net/http's does sendfile from an *os.File, which io.Copy through a plain
// Write would lose.
func (r *Recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{r.ResponseWriter}, src)
	}
	r.written.Add(n)
	return n, err
}

// writerOnly hides the Recorder's own ReadFrom from io.Copy, which would
// otherwise call straight back into it.
type writerOnly struct{ io.Writer }

// Flush sends buffered data to the client; a no-op when the underlying
// writer cannot flush.
func (r *Recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		if r.status == 0 {
			r.status = http.StatusOK
		}
		f.Flush()
	}
}

// Unwrap is what http.ResponseController uses to reach the connection for
// deadlines, hijacking and full-duplex.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Body counts the bytes a handler reads from a request body.
type Body struct {
	io.ReadCloser
	read atomic.Int64
}

// CountBody wraps r.Body in place (keeping r, so a ServeMux's r.Pattern
// stays visible to the caller) and returns the counter, or the existing
// one when an outer middleware already counts.
func CountBody(r *http.Request) *Body {
	if b, ok := r.Body.(*Body); ok {
		return b
	}
	if r.Body == nil || r.Body == http.NoBody {
		return &Body{} // nothing to count; r.Body stays recognisably empty
	}
	b := &Body{ReadCloser: r.Body}
	r.Body = b
	return b
}

func (b *Body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.read.Add(int64(n))
	return n, err
}

// BytesRead is the number of body bytes read so far.
func (b *Body) BytesRead() int64 { return b.read.Load() }
