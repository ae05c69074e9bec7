package notify

import "sync"

// queue holds an endpoint's events waiting to be sent, at most max of
// them: pushing onto a full queue drops the oldest, so what an endpoint
// gets after an outage is the latest, and memory stays bounded however
// long the outage. It grows as events arrive rather than taking max at
// once, since most endpoints keep up and most queues stay short.
type queue struct {
	mu      sync.Mutex
	ring    []Event
	head, n int
	max     int
	closed  bool
	// ready holds a signal while events wait, for the sender.
	ready chan struct{}
}

func newQueue(max int) *queue {
	return &queue{max: max, ready: make(chan struct{}, 1)}
}

// push adds e, and reports how many events it dropped to make room, or,
// once the queue is closed, e itself.
func (q *queue) push(e Event) (dropped int) {
	q.mu.Lock()
	switch {
	case q.closed:
		dropped = 1
	case q.n == q.max:
		q.ring[q.head] = e // the oldest's place is the newest's
		q.head = (q.head + 1) % len(q.ring)
		dropped = 1
	default:
		if q.n == len(q.ring) {
			q.grow()
		}
		q.ring[(q.head+q.n)%len(q.ring)] = e
		q.n++
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return dropped
}

func (q *queue) grow() {
	size := min(max(2*len(q.ring), 16), q.max)
	ring := make([]Event, size)
	for i := range q.n {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// take moves up to n of the oldest events onto batch and returns it.
func (q *queue) take(batch []Event, n int) []Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	for ; n > 0 && q.n > 0; n-- {
		batch = append(batch, q.ring[q.head])
		q.ring[q.head] = Event{} // no longer held here
		q.head = (q.head + 1) % len(q.ring)
		q.n--
	}
	return batch
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// close empties the queue for good, returning how many events it held:
// later pushes are dropped.
func (q *queue) close() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.n
	q.closed, q.ring, q.head, q.n = true, nil, 0, 0
	return n
}
