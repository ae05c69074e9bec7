package testsuite

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/lading-registry/lading/storage/driver"
)

func testSmallContent(e *env) {
	for _, n := range []int{0, 1, 4096, 1<<20 + 1} {
		p := e.put("obj", pattern(n).bytes(0, n))
		e.wantContent(p, pattern(n).bytes(0, n))
		fi, err := e.d.Stat(e.ctx, p)
		if err != nil || fi.Size != int64(n) || fi.IsDir {
			e.t.Errorf("Stat after PutContent of %d bytes = %+v, %v", n, fi, err)
		}
	}
	// A shorter replacement must not keep the longer one's tail.
	p := e.put("obj", []byte("short"))
	e.wantContent(p, []byte("short"))

	_, err := e.d.GetContent(e.ctx, e.path("missing"))
	e.wantNotFound("GetContent of a missing path", err)
	e.put("dir/child", []byte("x"))
	_, err = e.d.GetContent(e.ctx, e.path("dir"))
	e.wantNotFound("GetContent of a directory", err)
}

// testLargeContent streams an object far larger than a small-object path
// would hold, through two writers, and compares it by hash: neither the
// suite nor the driver may need it in memory twice.
func testLargeContent(e *env) {
	size := int64(128 << 20)
	if testing.Short() {
		size = 8 << 20
	}
	pieces := []int{1<<20 + 13, 5<<20 - 7, 32 << 10, 7<<20 + 1}
	buf := make([]byte, slices.Max(pieces))
	src := pattern(size)
	p := e.path("large")
	written := sha256.New()

	w, err := e.d.Writer(e.ctx, p, false)
	if err != nil {
		e.t.Fatal(err)
	}
	reopened := false
	for off, i := int64(0), 0; off < size; i++ {
		if !reopened && off >= size/2 {
			// Half way, hand over to a new writer, as a resumed upload does.
			if err := w.Close(); err != nil {
				e.t.Fatal(err)
			}
			if w, err = e.d.Writer(e.ctx, p, true); err != nil {
				e.t.Fatal(err)
			}
			if w.Size() != off {
				e.t.Fatalf("reopened writer's Size = %d, want %d", w.Size(), off)
			}
			reopened = true
		}
		piece := buf[:min(int64(pieces[i%len(pieces)]), size-off)]
		src.fill(piece, off)
		written.Write(piece)
		if n, err := w.Write(piece); err != nil || n != len(piece) {
			e.t.Fatalf("Write at %d: %d, %v", off, n, err)
		}
		off += int64(len(piece))
	}
	if w.Size() != size {
		e.t.Errorf("Size = %d, want %d", w.Size(), size)
	}
	if err := w.Commit(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		e.t.Fatal(err)
	}

	if fi, err := e.d.Stat(e.ctx, p); err != nil || fi.Size != size {
		e.t.Fatalf("Stat = %+v, %v; want size %d", fi, err, size)
	}
	r, err := e.d.Reader(e.ctx, p, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	read := sha256.New()
	n, err := io.Copy(read, r)
	r.Close()
	if err != nil || n != size {
		e.t.Fatalf("read back %d bytes, %v; want %d", n, err, size)
	}
	if !bytes.Equal(read.Sum(nil), written.Sum(nil)) {
		e.t.Fatal("content read back differs from content written")
	}

	mid := size/2 + 3
	r, err = e.d.Reader(e.ctx, p, mid)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Close()
	got := make([]byte, 64<<10)
	if _, err := io.ReadFull(r, got); err != nil {
		e.t.Fatal(err)
	}
	if !bytes.Equal(got, src.bytes(mid, len(got))) {
		e.t.Errorf("read at offset %d differs", mid)
	}
}

func testCreate(e *env) {
	p := e.path("lease")
	if err := e.d.Create(e.ctx, p, []byte("first")); err != nil {
		e.t.Fatalf("Create on a free path: %v", err)
	}
	if err := e.d.Create(e.ctx, p, []byte("second")); !errors.Is(err, driver.ErrExists) {
		e.t.Errorf("Create on a taken path: %v, want ErrExists", err)
	}
	e.wantContent(p, []byte("first"))

	// After the object is gone, the path is free again.
	if err := e.d.Delete(e.ctx, p); err != nil {
		e.t.Fatal(err)
	}
	if err := e.d.Create(e.ctx, p, nil); err != nil {
		e.t.Errorf("Create after Delete: %v", err)
	}
	e.wantContent(p, nil)
	if err := e.d.Create(e.ctx, e.path("new/dir/lease"), []byte("x")); err != nil {
		e.t.Errorf("Create below new directories: %v", err)
	}
}

func testCreateConcurrent(e *env) {
	const racers = 8
	p := e.path("contended")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []int
	)
	for i := range racers {
		wg.Go(func() {
			err := e.d.Create(e.ctx, p, []byte{byte(i)})
			switch {
			case err == nil:
				mu.Lock()
				winners = append(winners, i)
				mu.Unlock()
			case !errors.Is(err, driver.ErrExists):
				e.t.Errorf("racer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		e.t.Fatalf("%d racers won Create, want exactly 1", len(winners))
	}
	e.wantContent(p, []byte{byte(winners[0])})
}

// testPutState checks PutState is PutContent for readers: whole contents,
// replaced atomically, never a mix, even while readers race the writes.
func testPutState(e *env) {
	p := e.path("state")
	long, short := bytes.Repeat([]byte("L"), 64<<10), []byte("short")
	if err := e.d.PutState(e.ctx, p, long); err != nil {
		e.t.Fatal(err)
	}
	e.wantContent(p, long)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := e.d.GetContent(e.ctx, p)
				if err != nil || !bytes.Equal(got, long) && !bytes.Equal(got, short) {
					e.t.Errorf("read during PutState: %d bytes, %v", len(got), err)
					return
				}
			}
		}()
	}
	for i := range 50 {
		content := long
		if i%2 == 0 {
			content = short
		}
		if err := e.d.PutState(e.ctx, p, content); err != nil {
			e.t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	if err := e.d.Delete(e.ctx, p); err != nil {
		e.t.Fatal(err)
	}
}
