package logging

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is written by the flusher and read by the test.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
	fail   bool
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail {
		return 0, errors.New("disk full")
	}
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestBufferedBatchesLinesAndFlushesThem(t *testing.T) {
	out := &lockedBuffer{}
	// No tick comes during the test: the flush is the test's.
	b := NewBuffered(out, time.Hour)
	defer b.Close()
	for range 100 {
		b.Write([]byte("line\n"))
	}
	if out.String() != "" {
		t.Fatal("lines written at once, not batched")
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "line\n"); got != 100 {
		t.Fatalf("after a flush the output holds %d lines, want 100", got)
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if out.writes != 1 {
		t.Errorf("100 lines took %d writes, want 1", out.writes)
	}
}

// Lines left waiting are written by the ticker, without a Flush or Close.
func TestBufferedFlushesOnItsInterval(t *testing.T) {
	out := &lockedBuffer{}
	b := NewBuffered(out, 20*time.Millisecond)
	defer b.Close()
	b.Write([]byte("line\n"))
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != "line\n" {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s the output holds %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBufferedKeepsLinesWholeAndLosesNoneAtClose(t *testing.T) {
	out := &lockedBuffer{}
	b := NewBuffered(out, time.Hour)
	line := strings.Repeat("x", 1000) + "\n"
	for range 200 { // three buffers' worth
		b.Write([]byte(line))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.Count(got, line) != 200 || len(got) != 200*len(line) {
		t.Fatalf("got %d bytes, want 200 whole lines", len(got))
	}
	if out.writes < 3 {
		t.Errorf("a full buffer waited for the ticker: %d writes", out.writes)
	}
}

// A refused batch costs its lines, not every later one.
func TestBufferedRecoversFromAFailedWrite(t *testing.T) {
	out := &lockedBuffer{fail: true}
	b := NewBuffered(out, time.Hour)
	b.Write([]byte("lost\n"))
	if err := b.Flush(); err == nil {
		t.Fatal("flush to a failing writer: no error")
	}
	out.mu.Lock()
	out.fail = false
	out.mu.Unlock()
	b.Write([]byte("kept\n"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "kept\n" {
		t.Fatalf("output %q, want the line after the failure only", got)
	}
}

// A line written after Close (a handler the drain cut short) goes straight
// to the output; a second Close is harmless.
func TestBufferedWritesThroughAfterClose(t *testing.T) {
	out := &lockedBuffer{}
	b := NewBuffered(out, time.Hour)
	b.Write([]byte("before\n"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b.Write([]byte("after\n"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "before\nafter\n" {
		t.Fatalf("output %q", got)
	}
}
