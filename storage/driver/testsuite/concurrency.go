package testsuite

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

func testConcurrentReaders(e *env) {
	const size = 1<<20 + 17
	src := pattern(7)
	p := e.put("shared", src.bytes(0, size))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			off := int64(i) * size / 8
			r, err := e.d.Reader(e.ctx, p, off)
			if err != nil {
				e.t.Errorf("reader %d: %v", i, err)
				return
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, src.bytes(off, int(size-off))) {
				e.t.Errorf("reader %d from %d: %d bytes, %v; content differs", i, off, len(got), err)
			}
		})
	}
	wg.Wait()
}

func testConcurrentWriters(e *env) {
	const (
		writers = 8
		pieces  = 32
		piece   = 4 << 10
	)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			p, src := e.path(fmt.Sprintf("w/%d/data", i)), pattern(i)
			w, err := e.d.Writer(e.ctx, p, false)
			if err != nil {
				e.t.Errorf("writer %d: %v", i, err)
				return
			}
			defer w.Close()
			for j := range pieces {
				if _, err := w.Write(src.bytes(int64(j*piece), piece)); err != nil {
					e.t.Errorf("writer %d: %v", i, err)
					return
				}
			}
			if err := w.Commit(e.ctx); err != nil {
				e.t.Errorf("writer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	for i := range writers {
		p := e.path(fmt.Sprintf("w/%d/data", i))
		e.wantContent(p, pattern(i).bytes(0, pieces*piece))
	}
}
