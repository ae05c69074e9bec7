package registry

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

// recorder is a writer that keeps what it took and fails from its failAt-th
// call on (0: never).
type recorder struct {
	bytes.Buffer
	calls, failAt int
}

var errDisk = errors.New("disk gone")

func (r *recorder) Write(p []byte) (int, error) {
	r.calls++
	if r.failAt > 0 && r.calls >= r.failAt {
		return r.Buffer.Write(p[:len(p)/2]) // part of the piece, as a full disk does
	}
	return r.Buffer.Write(p)
}

func (r *recorder) fails() bool { return r.failAt > 0 && r.calls >= r.failAt }

type failing struct{ *recorder }

func (f failing) Write(p []byte) (int, error) {
	n, _ := f.recorder.Write(p)
	if f.fails() {
		return n, errDisk
	}
	return n, nil
}

func TestCopyInWritesAndHashesEveryByte(t *testing.T) {
	for _, size := range []int{0, 1, copyBufSize - 1, copyBufSize, copyBufSize + 1, 5*copyBufSize + 17} {
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(i*7 + i>>12)
		}
		for name, r := range map[string]io.Reader{
			"whole":   bytes.NewReader(body),
			"trickle": iotest.HalfReader(bytes.NewReader(body)),
		} {
			rec := &recorder{}
			h := sha256.New()
			n, rerr, werr := copyIn(rec, r, []hash.Hash{h}, func() error { return nil })
			if werr != nil || (rerr != nil && rerr != io.EOF) {
				t.Fatalf("%d %s: %v %v", size, name, rerr, werr)
			}
			want := sha256.Sum256(body)
			if n != int64(size) || !bytes.Equal(rec.Bytes(), body) || !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("%d %s: wrote %d of %d bytes, same bytes %v, same hash %v", size, name, n, size, bytes.Equal(rec.Bytes(), body), bytes.Equal(h.Sum(nil), want[:]))
			}
		}
	}
}

func TestCopyInCountsOnlyWholePiecesWritten(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 6*copyBufSize)
	for failAt := 1; failAt <= 6; failAt++ {
		rec := &recorder{failAt: failAt}
		n, _, werr := copyIn(failing{rec}, bytes.NewReader(body), nil, func() error { return nil })
		if !errors.Is(werr, errDisk) {
			t.Fatalf("failing at write %d: %v", failAt, werr)
		}
		if want := int64(failAt-1) * copyBufSize; n != want {
			t.Fatalf("failing at write %d: counted %d bytes, want the %d before it", failAt, n, want)
		}
		if rec.calls != failAt {
			t.Fatalf("failing at write %d: %d writes, none may follow a failed one", failAt, rec.calls)
		}
	}
}

func TestCopyInKeepsTheBytesBeforeABrokenBody(t *testing.T) {
	body := bytes.Repeat([]byte("y"), 3*copyBufSize+5)
	broken := errors.New("connection reset")
	rec := &recorder{}
	h := sha256.New()
	n, rerr, werr := copyIn(rec, io.MultiReader(bytes.NewReader(body), iotest.ErrReader(broken)), []hash.Hash{h}, func() error { return nil })
	want := sha256.Sum256(body)
	if rerr != broken || werr != nil || n != int64(len(body)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("rerr %v werr %v n %d: the bytes before the break are written and hashed", rerr, werr, n)
	}
}

func TestCopyInStopsWhenTold(t *testing.T) {
	body := bytes.Repeat([]byte("z"), 8*copyBufSize)
	lapsed := errors.New("lapsed")
	w := &watched{}
	stop := func() error {
		if w.writes.Load() >= 3 {
			return lapsed
		}
		return nil
	}
	n, _, werr := copyIn(w, bytes.NewReader(body), nil, stop)
	if werr != nil || n != 3*copyBufSize || w.bytes != n {
		t.Fatalf("n %d, %d bytes written, werr %v: a stop ends the copy with the writer done", n, w.bytes, werr)
	}
}

func TestCopyOutSendsEveryByte(t *testing.T) {
	for _, size := range []int{1, copyBufSize, copyBufSize + 1, 4*copyBufSize + 3} {
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(i*13 + i>>16)
		}
		var got bytes.Buffer
		n, err := copyOut(&got, iotest.HalfReader(bytes.NewReader(body)))
		if err != nil || n != int64(size) || !bytes.Equal(got.Bytes(), body) {
			t.Fatalf("%d bytes: sent %d, err %v, same bytes %v", size, n, err, bytes.Equal(got.Bytes(), body))
		}
	}
}

// counting counts the bytes read through it.
type counting struct {
	r io.Reader
	n atomic.Int64
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestCopyOutStopsReadingWhenTheClientIsGone(t *testing.T) {
	r := &counting{r: bytes.NewReader(make([]byte, 64*copyBufSize))}
	rec := &recorder{failAt: 3}
	n, err := copyOut(failing{rec}, r)
	if !errors.Is(err, errDisk) || n != 2*copyBufSize+copyBufSize/2 {
		t.Fatalf("sent %d, err %v", n, err)
	}
	if read := r.n.Load(); read > int64(3+readAhead+1)*copyBufSize {
		t.Fatalf("read %d MiB for a client gone after 3: reading goes on", read>>20)
	}
}

func TestCopyOutReportsABrokenRead(t *testing.T) {
	broken := errors.New("backend reset")
	var got bytes.Buffer
	body := bytes.Repeat([]byte("q"), 2*copyBufSize+9)
	n, err := copyOut(&got, io.MultiReader(bytes.NewReader(body), iotest.ErrReader(broken)))
	if err != broken || n != int64(len(body)) || !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("sent %d of %d, err %v: the bytes before a broken read go out, then its error", n, len(body), err)
	}
}

// A lapse of the lock stops every write, even of a piece queued before it.
func TestCopyInWritesNothingAfterAStop(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // the writer lags the loop
	for range 20 {
		var lapsed atomic.Bool
		var asked atomic.Int32
		stop := func() error {
			if asked.Add(1) >= 2 {
				lapsed.Store(true)
				return errors.New("lapsed")
			}
			return nil
		}
		w := &watched{lapsed: &lapsed}
		if _, _, werr := copyIn(w, bytes.NewReader(make([]byte, 4*copyBufSize)), nil, stop); werr != nil {
			t.Fatal(werr)
		}
		if n := w.late.Load(); n > 0 {
			t.Fatalf("%d writes began after the stop", n)
		}
	}
}

// watched counts the writes it takes, and those begun once lapsed is set.
type watched struct {
	lapsed *atomic.Bool
	late   atomic.Int32
	writes atomic.Int32
	bytes  int64 // the writer's goroutine's alone until the copy returns
}

func (w *watched) Write(p []byte) (int, error) {
	if w.lapsed != nil && w.lapsed.Load() {
		w.late.Add(1)
	}
	w.bytes += int64(len(p))
	w.writes.Add(1)
	return len(p), nil
}

// A panic in a driver's Write or Read reaches the request's goroutine, where
// net/http recovers it, rather than ending the process or hanging.
func TestCopyPanicsReachTheCaller(t *testing.T) {
	for name, copy := range map[string]func() error{
		"in": func() error {
			_, _, err := copyIn(&panicky{at: 2}, bytes.NewReader(make([]byte, 6*copyBufSize)), nil, func() error { return nil })
			return err
		},
		"out": func() error {
			_, err := copyOut(io.Discard, io.MultiReader(bytes.NewReader(make([]byte, 2*copyBufSize)), &panicky{}))
			return err
		},
	} {
		done := make(chan any, 1)
		go func() {
			defer func() { done <- recover() }()
			copy()
		}()
		select {
		case p := <-done:
			if p == nil {
				t.Fatalf("copy %s: the panic was lost", name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("copy %s: hung after a panic", name)
		}
	}
}

// panicky panics at its at-th Write, or at its first Read.
type panicky struct {
	at     int32
	writes atomic.Int32
}

func (p *panicky) Read([]byte) (int, error) { panic("driver bug") }

func (p *panicky) Write(b []byte) (int, error) {
	if p.writes.Add(1) >= p.at {
		panic("driver bug")
	}
	return len(b), nil
}

// panickyReader panics on its read number at.
type panickyReader struct {
	r     io.Reader
	at, n int
}

func (p *panickyReader) Read(b []byte) (int, error) {
	if p.n++; p.n == p.at {
		panic("body reader")
	}
	return p.r.Read(b)
}

// A body whose reading panics leaves no stage of the copy behind.
func TestCopyInPanickingBodyLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not reach the caller")
			}
		}()
		r := &panickyReader{r: bytes.NewReader(make([]byte, 8*copyBufSize)), at: 4}
		copyIn(&recorder{}, r, []hash.Hash{sha256.New()}, func() error { return nil })
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before: a stage is left waiting", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
