package server

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// On HTTP/1 a read or write deadline counts only while the server waits on
// the connection, and idleBody and idleWriter push it ahead of each call.
// On HTTP/2 it is a timer of the stream, which fires whether or not a call
// is waiting: time the handler spends on storage between two reads or
// writes (an S3 part, a retry) would count against the client, and a
// healthy transfer would be cut. There a stallWatch bounds the waits
// themselves: a read or write that has waited for timeout is made to fail
// at once, through a deadline in the past.

// stallWatch fails a call that waits longer than timeout, through cancel.
// Its timer runs only while a call waits, so that none outlives the
// request, holding what cancel reaches.
type stallWatch struct {
	timeout time.Duration
	cancel  func() // makes the waiting call fail now

	mu       sync.Mutex
	waiting  bool
	deadline time.Time // of the waiting call
	timer    *time.Timer
}

func newStallWatch(timeout time.Duration, cancel func()) *stallWatch {
	return &stallWatch{timeout: timeout, cancel: cancel}
}

// begin marks a call waiting from now; end, that it returned.
func (s *stallWatch) begin() {
	s.mu.Lock()
	s.waiting, s.deadline = true, time.Now().Add(s.timeout)
	if s.timer == nil {
		s.timer = time.AfterFunc(s.timeout, s.fire)
	} else {
		s.timer.Reset(s.timeout)
	}
	s.mu.Unlock()
}

func (s *stallWatch) end() {
	s.mu.Lock()
	s.waiting = false
	s.timer.Stop()
	s.mu.Unlock()
}

// fire cancels the call still waiting when the timer ends. A call that
// returned meanwhile stopped it too late and is left alone, and so is one
// begun since (the timer will fire again at its deadline).
func (s *stallWatch) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting && !time.Now().Before(s.deadline) {
		s.cancel()
	}
}

// past is a deadline already gone: HTTP/2 then fails the stream's waiting
// read or write at once.
var past = time.Unix(1, 0)

// watchedBody is a request body on HTTP/2 whose reads may each wait for
// data at most a timeout.
type watchedBody struct {
	io.ReadCloser
	watch *stallWatch
}

func newWatchedBody(body io.ReadCloser, rc *http.ResponseController, timeout time.Duration) *watchedBody {
	return &watchedBody{ReadCloser: body, watch: newStallWatch(timeout, func() { _ = rc.SetReadDeadline(past) })}
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.watch.begin()
	defer b.watch.end()
	return b.ReadCloser.Read(p)
}
