package notify

import (
	"strconv"
	"testing"
	"time"
)

func ids(events []Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func numbered(n int) Event { return Event{ID: strconv.Itoa(n)} }

func TestQueueDropsTheOldestWhenFull(t *testing.T) {
	q := newQueue(3)
	dropped := 0
	for i := 1; i <= 5; i++ {
		dropped += q.push(numbered(i))
	}
	if dropped != 2 || q.len() != 3 {
		t.Fatalf("dropped %d, holds %d; want 2 and 3", dropped, q.len())
	}
	got := ids(q.take(nil, 10))
	if want := []string{"3", "4", "5"}; !equal(got, want) {
		t.Fatalf("took %v, want %v", got, want)
	}
	if q.len() != 0 {
		t.Fatalf("holds %d after taking all", q.len())
	}
}

func TestQueueKeepsOrderAcrossGrowthAndWrap(t *testing.T) {
	q := newQueue(1000)
	next, want := 0, 0
	for round := range 20 {
		for range round%7 + 3 {
			next++
			q.push(numbered(next))
		}
		for _, e := range q.take(nil, round%5+1) {
			want++
			if e.ID != strconv.Itoa(want) {
				t.Fatalf("took %s, want %d", e.ID, want)
			}
		}
	}
	for _, e := range q.take(nil, 100) {
		want++
		if e.ID != strconv.Itoa(want) {
			t.Fatalf("took %s, want %d", e.ID, want)
		}
	}
	if want != next {
		t.Fatalf("took %d of %d", want, next)
	}
}

func TestClosedQueueDropsWhatItHeldAndWhatComes(t *testing.T) {
	q := newQueue(10)
	q.push(numbered(1))
	q.push(numbered(2))
	if n := q.close(); n != 2 {
		t.Fatalf("close returned %d, want 2", n)
	}
	if n := q.push(numbered(3)); n != 1 {
		t.Fatalf("push after close dropped %d, want 1", n)
	}
	if q.len() != 0 {
		t.Fatal("a closed queue holds events")
	}
}

func TestBackoffDoublesToItsCap(t *testing.T) {
	for failures, want := range []time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 6: 10 * time.Second} {
		if failures == 0 {
			continue
		}
		if got := backoff(time.Second, 10*time.Second, failures); got != want {
			t.Errorf("after %d failures: %s, want %s", failures, got, want)
		}
	}
	if got := backoff(time.Second, 10*time.Second, 1000); got != 10*time.Second {
		t.Errorf("after 1000 failures: %s", got)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestJitterStaysNearTheWait(t *testing.T) {
	for range 1000 {
		if got := jitter(time.Second); got < 750*time.Millisecond || got > 1250*time.Millisecond {
			t.Fatalf("jitter of 1s: %v", got)
		}
	}
	if jitter(0) != 0 {
		t.Fatal("jitter of nothing")
	}
}
