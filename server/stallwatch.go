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
type stallWatch struct {
	timeout time.Duration
	cancel  func() // makes the waiting call fail now

	mu      sync.Mutex
	waiting bool      // a call is waiting
	since   time.Time // when it began
	timer   *time.Timer
	armed   bool // the timer will fire
}

func newStallWatch(timeout time.Duration, cancel func()) *stallWatch {
	return &stallWatch{timeout: timeout, cancel: cancel}
}

// begin marks a call waiting from now; end, that it returned.
func (s *stallWatch) begin() {
	s.mu.Lock()
	s.waiting, s.since = true, time.Now()
	if !s.armed {
		s.armed = true
		if s.timer == nil {
			s.timer = time.AfterFunc(s.timeout, s.check)
		} else {
			s.timer.Reset(s.timeout)
		}
	}
	s.mu.Unlock()
}

func (s *stallWatch) end() {
	s.mu.Lock()
	s.waiting = false
	s.mu.Unlock()
}

// check runs when the timer fires: it cancels a call waiting for timeout,
// waits on for one that began since, and lets the timer rest otherwise
// (the next begin arms it again).
func (s *stallWatch) check() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.waiting {
		s.armed = false
		return
	}
	if left := s.timeout - time.Since(s.since); left > 0 {
		s.timer.Reset(left)
		return
	}
	s.armed = false
	s.cancel()
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
