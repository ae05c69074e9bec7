package driver_test

import (
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
	"github.com/lading-registry/lading/storage/driver/testsuite"
)

// The decorator must be invisible to a caller using valid paths.
func TestInstrumentConformance(t *testing.T) {
	testsuite.Run(t, func(*testing.T) driver.Driver {
		return driver.Instrument(inmemory.New(), func(string, time.Duration, error) {})
	})
}

// spy counts the calls that reach the backend, and hands out fixed readers
// and writers so the test can tell whether they were wrapped.
type spy struct {
	driver.Driver
	calls  int
	reader io.ReadCloser
	writer driver.FileWriter
}

func (s *spy) GetContent(ctx context.Context, p string) ([]byte, error) {
	s.calls++
	return s.Driver.GetContent(ctx, p)
}

func (s *spy) Reader(context.Context, string, int64) (io.ReadCloser, error) {
	s.calls++
	return s.reader, nil
}

func (s *spy) Writer(context.Context, string, bool) (driver.FileWriter, error) {
	s.calls++
	return s.writer, nil
}

func (s *spy) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	s.calls++
	return s.Driver.Stat(ctx, p)
}

type observed struct {
	op  string
	err error
}

type recorder struct {
	mu   sync.Mutex
	seen []observed
}

func (r *recorder) observe(op string, elapsed time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, observed{op, err})
}

func (r *recorder) ops() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ops []string
	for _, o := range r.seen {
		ops = append(ops, o.op)
	}
	return ops
}

func newSpy(t *testing.T) *spy {
	mem := inmemory.New()
	w, err := mem.Writer(t.Context(), "/w", false)
	if err != nil {
		t.Fatal(err)
	}
	return &spy{Driver: mem, reader: io.NopCloser(strings.NewReader("x")), writer: w}
}

func TestInstrumentRefusesInvalidPathsBeforeTheBackend(t *testing.T) {
	s := newSpy(t)
	var rec recorder
	d := driver.Instrument(s, rec.observe)
	for _, p := range []string{"", "a", "/a/", "//a", "/a//b", "/a/../b", "/./a", "/a b", "/a%2fb", "/ä", "/" + strings.Repeat("a", driver.MaxPathLength)} {
		_, err := d.GetContent(t.Context(), p)
		if !driver.IsInvalidPath(err) {
			t.Errorf("GetContent(%q): %v", p, err)
		}
		if ip, ok := err.(driver.InvalidPathError); !ok || ip.Driver != "inmemory" {
			t.Errorf("GetContent(%q) error %#v does not name the driver", p, err)
		}
		if _, err := d.Reader(t.Context(), p, 0); !driver.IsInvalidPath(err) {
			t.Errorf("Reader(%q): %v", p, err)
		}
		if _, err := d.Writer(t.Context(), p, false); !driver.IsInvalidPath(err) {
			t.Errorf("Writer(%q): %v", p, err)
		}
	}
	if s.calls != 0 {
		t.Errorf("the backend got %d calls with invalid paths", s.calls)
	}
	// Refusals are observed too: a client sending bad paths is worth a metric.
	for _, o := range rec.seen {
		if !driver.IsInvalidPath(o.err) {
			t.Errorf("observed %s with %v, want the InvalidPathError", o.op, o.err)
		}
	}
}

func TestInstrumentReturnsTheBackendsReader(t *testing.T) {
	for _, observe := range []driver.Observer{nil, new(recorder).observe} {
		s := newSpy(t)
		r, err := driver.Instrument(s, observe).Reader(t.Context(), "/a", 0)
		if err != nil {
			t.Fatal(err)
		}
		if r != s.reader {
			t.Errorf("with observer %v: Reader returned %T %p, not the backend's own", observe != nil, r, r)
		}
	}
}

func TestInstrumentWithoutObserverLeavesWritersAlone(t *testing.T) {
	s := newSpy(t)
	w, err := driver.Instrument(s, nil).Writer(t.Context(), "/a", false)
	if err != nil {
		t.Fatal(err)
	}
	if w != s.writer {
		t.Errorf("Writer returned %T, not the backend's own", w)
	}
}

func TestInstrumentObservesEveryCall(t *testing.T) {
	ctx := t.Context()
	var rec recorder
	d := driver.Instrument(inmemory.New(), rec.observe)
	w, err := d.Writer(ctx, "/up/data", false)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "abc")
	w.Commit(ctx)
	w.Close()
	w, _ = d.Writer(ctx, "/up/data", true)
	if w.Size() != 3 {
		t.Errorf("Size through the decorator = %d", w.Size())
	}
	w.Cancel(ctx)
	r, err := d.Reader(ctx, "/missing", 0)
	if r != nil || !driver.IsNotFound(err) {
		t.Errorf("Reader of a missing path: %v, %v", r, err)
	}
	d.Walk(ctx, "/", "", func(driver.FileInfo) error { return nil })

	want := []string{"Writer", "Writer.Write", "Writer.Commit", "Writer.Close", "Writer", "Writer.Cancel", "Reader", "Walk"}
	if got := rec.ops(); !slices.Equal(got, want) {
		t.Errorf("observed %q, want %q", got, want)
	}
	// Not-found reaches the observer as the error itself, for it to classify.
	if o := rec.seen[6]; !driver.IsNotFound(o.err) {
		t.Errorf("Reader of a missing path observed with %v", o.err)
	}
}
