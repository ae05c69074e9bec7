package registry

import (
	"hash"
	"io"
	"sync/atomic"
)

// pipeAhead is how many pieces of a body may wait for the hasher, and for
// the writer, while the next is read; pipeBufs is the buffers one body
// takes: one being read into while the hasher and the writer hold the
// others (a fourth measured no faster).
const (
	pipeAhead = 1
	pipeBufs  = 3
)

// copyIn writes r to w in pieces of copyBufSize, hashing every piece into
// hs, until r ends or fails, a write fails, or stop reports an error before
// a piece is written. n counts the bytes of the pieces w took whole. When
// werr is nil and stop reported nothing, every byte read was written and
// hashed, and nothing else; otherwise the hashes may have run ahead of n
// and the caller must drop them. rerr is r's error (io.EOF at a clean end).
//
// A body longer than one piece is hashed by one goroutine and written by
// another while the next piece is read: reading from the connection, SHA-256
// and the copy into the page cache then overlap on two cores rather than
// run one after the other (1.24x on a 1 GiB push in 16 MiB chunks, where
// hashing in the reading goroutine held the reading up). A body that leaves
// its first piece short is written in line, so a small blob costs no
// goroutine.
func copyIn(w io.Writer, r io.Reader, hs []hash.Hash, stop func() error) (n int64, rerr, werr error) {
	first := copyBufs.Get().(*[]byte)
	m, rerr := fill(r, *first)
	if m == len(*first) && rerr == nil && stop() == nil {
		return copyPiped(w, r, hs, stop, first)
	}
	defer copyBufs.Put(first)
	if m == 0 || stop() != nil {
		return 0, rerr, nil
	}
	if _, werr = w.Write((*first)[:m]); werr != nil {
		return 0, rerr, werr
	}
	for _, h := range hs {
		h.Write((*first)[:m])
	}
	return int64(m), rerr, nil
}

// copyPiped is copyIn past its first piece, which fills first. The request's
// goroutine reads the body; one goroutine hashes each piece while another
// writes it, so that reading, hashing and writing overlap.
func copyPiped(w io.Writer, r io.Reader, hs []hash.Hash, stop func() error, first *[]byte) (n int64, rerr, werr error) {
	type piece struct {
		buf  *[]byte
		n    int
		refs atomic.Int32 // the stages still to use buf
	}
	// Room for every buffer, so no stage ever waits to give one back.
	free := make(chan *[]byte, pipeBufs)
	release := func(p *piece) {
		if p.refs.Add(-1) == 0 {
			free <- p.buf
		}
	}
	stages := int32(1)
	var hashQ chan *piece
	hashed := make(chan struct{})
	if len(hs) > 0 {
		stages++
		hashQ = make(chan *piece, pipeAhead)
		go func() {
			defer close(hashed)
			for p := range hashQ {
				for _, h := range hs {
					h.Write((*p.buf)[:p.n])
				}
				release(p)
			}
		}()
	} else {
		close(hashed)
	}
	writeQ := make(chan *piece, pipeAhead)
	done := make(chan any, 1) // the writer's panic, if any
	var ended atomic.Bool     // the writer writes no more
	go func() {
		defer func() {
			p := recover()
			if p != nil {
				// Keep the loop below from waiting on a writer gone.
				ended.Store(true)
				for q := range writeQ {
					release(q)
				}
			}
			done <- p
		}()
		for p := range writeQ {
			// stop is asked again just before each write: a piece queued
			// before the lock lapsed must not be written after.
			if !ended.Load() && stop() == nil {
				if _, werr = w.Write((*p.buf)[:p.n]); werr == nil {
					n += int64(p.n)
				}
			}
			if werr != nil || stop() != nil {
				ended.Store(true)
			}
			release(p)
		}
	}()
	bufs := []*[]byte{first}
	// The queues close however reading ends, a panic reading the body or
	// in stop included: the stages then end on their own.
	func() {
		defer func() {
			if hashQ != nil {
				close(hashQ)
			}
			close(writeQ)
		}()
		buf, m := first, len(*first)
		for {
			p := &piece{buf: buf, n: m}
			p.refs.Store(stages)
			if hashQ != nil {
				hashQ <- p
			}
			writeQ <- p
			if rerr != nil || ended.Load() {
				return
			}
			if len(bufs) < pipeBufs {
				buf = copyBufs.Get().(*[]byte)
				bufs = append(bufs, buf)
			} else {
				buf = <-free
			}
			if m, rerr = fill(r, *buf); m == 0 || stop() != nil {
				return
			}
		}
	}()
	<-hashed
	// n and werr are the writer's, final once it has sent.
	if p := <-done; p != nil {
		panic(p) // where net/http recovers it, as from an inline write
	}
	for _, b := range bufs {
		copyBufs.Put(b)
	}
	return n, rerr, werr
}

// readAhead is how many pieces of a blob may wait for the client while the
// next is read: two buffers in all, one read into while one is sent.
const readAhead = 1

// copyOut copies r to w through buffers of copyBufSize, reading the next
// piece in a goroutine of its own while the last is written: on a peer
// that copies each byte again (a client on this host, TLS) the reading and
// the sending then take two cores instead of one after the other. It
// returns the bytes w took and the first error, w's first.
func copyOut(w io.Writer, r io.Reader) (int64, error) {
	type piece struct {
		buf *[]byte
		n   int
		err error
	}
	full := make(chan piece, readAhead)
	free := make(chan *[]byte, readAhead+1)
	for range readAhead + 1 {
		free <- copyBufs.Get().(*[]byte)
	}
	var stop atomic.Bool
	var panicked any
	go func() {
		defer close(full)
		defer func() { panicked = recover() }()
		for !stop.Load() {
			b := <-free
			m, err := fill(r, *b)
			full <- piece{b, m, err}
			if err != nil {
				return
			}
		}
	}()
	var n int64
	var werr, rerr error
	for p := range full {
		if werr == nil && p.n > 0 {
			var k int
			k, werr = w.Write((*p.buf)[:p.n])
			n += int64(k)
			if werr == nil && k < p.n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				stop.Store(true) // the reader ends after its piece in hand
			}
		}
		if p.err != nil && p.err != io.EOF {
			rerr = p.err
		}
		free <- p.buf
	}
	// The reader has closed full: every buffer is back.
	if panicked != nil {
		panic(panicked) // where net/http recovers it, as from an inline read
	}
	for range readAhead + 1 {
		copyBufs.Put(<-free)
	}
	if werr != nil {
		return n, werr
	}
	return n, rerr
}
