package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

func TestBackendLocker(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	a := &backendLocker{d: d, ttl: time.Hour, now: now}
	b := &backendLocker{d: d, ttl: time.Hour, now: now}

	unlock, err := a.TryLock(ctx, "repo/x/0000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLock(ctx, "repo/x/0000"); !errors.Is(err, ErrLocked) {
		t.Fatalf("second holder: %v, want ErrLocked", err)
	}
	if u, err := b.TryLock(ctx, "repo/x/0001"); err != nil {
		t.Fatalf("other key: %v", err)
	} else {
		u()
	}
	unlock()
	unlock2, err := b.TryLock(ctx, "repo/x/0000")
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}

	// A holder that vanished (never unlocks) loses the lease at expiry.
	clock.Add(int64(2 * time.Hour))
	unlock3, err := a.TryLock(ctx, "repo/x/0000")
	if err != nil {
		t.Fatalf("expired lease not broken: %v", err)
	}
	unlock2() // the old holder's unlock must not release the new lease
	if _, err := b.TryLock(ctx, "repo/x/0000"); !errors.Is(err, ErrLocked) {
		t.Fatalf("stale unlock released the new holder's lease: %v", err)
	}
	unlock3()
	if _, err := d.Stat(ctx, "/locks"); err == nil {
		t.Fatal("lease objects left behind")
	}
}

func TestBackendLockerOneWinner(t *testing.T) {
	ctx := context.Background()
	l := NewBackendLocker(inmemory.New(), time.Minute)
	var wins atomic.Int32
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			if unlock, err := l.TryLock(ctx, "k"); err == nil {
				wins.Add(1)
				t.Cleanup(unlock)
			}
		}()
	}
	close(gate)
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d holders at once", wins.Load())
	}
}

// A holder stalled past its lease, whose key another then took, is told
// at its next renewal; one that keeps its lease is not.
func TestBackendLockerReportsLoss(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	l := &backendLocker{d: d, ttl: 900 * time.Millisecond, now: time.Now}
	unlock, lost, err := l.TryLockLost(ctx, "repo/x/0000")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	select {
	case <-lost:
		t.Fatal("a lease kept by its holder reported lost")
	case <-time.After(1200 * time.Millisecond):
	}
	// Another took the key (as after an expiry the holder slept through),
	// and renews it as its holder would: a renewal of the old holder's
	// that read its own lease just before may still write it back once.
	deadline := time.After(5 * time.Second)
	for {
		if err := d.PutContent(ctx, lockPath("repo/x/0000"), []byte(`{"token":"another","expires":"2100-01-01T00:00:00Z"}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-lost:
			return
		case <-deadline:
			t.Fatal("a lease taken by another was never reported lost")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Work under a lease stops once the lease is lost, and says why.
func TestWhileHeld(t *testing.T) {
	lost := make(chan struct{})
	ctx, stop := whileHeld(context.Background(), lost)
	defer stop()
	if ctx.Err() != nil {
		t.Fatal("canceled before the lease was lost")
	}
	close(lost)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not canceled once the lease was lost")
	}
	if err := leaseErr(ctx, ctx.Err()); !errors.Is(err, errLeaseLost) {
		t.Fatalf("error %v does not name the lost lease", err)
	}

	ctx, stop = whileHeld(context.Background(), make(chan struct{}))
	stop()
	if err := leaseErr(ctx, errors.New("other")); errors.Is(err, errLeaseLost) {
		t.Fatalf("work ended for another reason blamed on the lease: %v", err)
	}
	if ctx, _ := whileHeld(context.Background(), nil); ctx != context.Background() {
		t.Fatal("a lease that cannot be lost got a context of its own")
	}
}

// A collector that lost its lease leaves the state to the new holder.
func TestCollectorWithoutLeaseWritesNoState(t *testing.T) {
	ctx := context.Background()
	reg := New(inmemory.New(), Options{})
	if _, err := reg.writeGCState(ctx, gcState{Run: "the new holder's", Window: time.Second}); err != nil {
		t.Fatal(err)
	}
	lost := make(chan struct{})
	lctx, stop := whileHeld(ctx, lost)
	defer stop()
	close(lost)
	<-lctx.Done()
	c := &collector{reg: reg, state: gcState{Run: "stale"}, opts: GCOptions{Window: time.Second}}
	c.finish(lctx, true)
	s, err := reg.readGCState(ctx)
	if err != nil || s.Run != "the new holder's" {
		t.Fatalf("state after a stale collector's finish: %+v, %v", s, err)
	}
}

// takeover lets two lockers both read an expired lease before either
// removes it, and holds the second's removal until the first has made its
// own lease.
type takeover struct {
	driver.Driver
	reads     sync.WaitGroup
	firstMade chan struct{}
	mu        sync.Mutex
	removes   int
	once      sync.Once
}

func (g *takeover) GetContent(ctx context.Context, path string) ([]byte, error) {
	b, err := g.Driver.GetContent(ctx, path)
	g.reads.Done()
	g.reads.Wait()
	return b, err
}

func (g *takeover) RemoveObjectIf(ctx context.Context, path string, content []byte) (bool, error) {
	g.mu.Lock()
	g.removes++
	second := g.removes == 2
	g.mu.Unlock()
	if second {
		<-g.firstMade
	}
	return driver.RemoveObjectIf(ctx, g.Driver, path, content)
}

func (g *takeover) Create(ctx context.Context, path string, content []byte) error {
	err := g.Driver.Create(ctx, path, content)
	if err == nil {
		g.once.Do(func() { close(g.firstMade) })
	}
	return err
}

// Two lockers that find the same lease expired do not both take it: the
// second's removal would otherwise remove the first's new lease.
func TestExpiredLeaseIsTakenOnce(t *testing.T) {
	mem := inmemory.New()
	raw, _ := json.Marshal(map[string]any{"token": "dead", "expires": time.Now().Add(-time.Minute)})
	if err := mem.PutContent(context.Background(), "/locks/gc", raw); err != nil {
		t.Fatal(err)
	}
	g := &takeover{Driver: mem, firstMade: make(chan struct{})}
	g.reads.Add(2)
	l := NewBackendLocker(g, time.Minute)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	unlocks := make([]func(), 2)
	for i := range 2 {
		wg.Go(func() { unlocks[i], errs[i] = l.TryLock(context.Background(), "gc") })
	}
	wg.Wait()
	for _, unlock := range unlocks {
		if unlock != nil {
			defer unlock()
		}
	}
	if errs[0] == nil && errs[1] == nil {
		t.Fatal("both lockers took the expired lease")
	}
	if errs[0] != nil && errs[1] != nil {
		t.Fatalf("neither took the expired lease: %v", errs)
	}
}

// unreachable is a backend that stops answering once cut: every request
// fails, or waits for its deadline when hang is set, as across a partition.
type unreachable struct {
	driver.Driver
	cut, hang atomic.Bool
}

func (u *unreachable) fail(ctx context.Context) error {
	if !u.cut.Load() {
		return nil
	}
	if u.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return errors.New("connection refused")
}

func (u *unreachable) GetContent(ctx context.Context, path string) ([]byte, error) {
	if err := u.fail(ctx); err != nil {
		return nil, err
	}
	return u.Driver.GetContent(ctx, path)
}

func (u *unreachable) PutContent(ctx context.Context, path string, content []byte) error {
	if err := u.fail(ctx); err != nil {
		return err
	}
	return u.Driver.PutContent(ctx, path, content)
}

// A holder cut off from the backend cannot renew its lease: it is told the
// lease is lost before the lease's stored term ends, when another replica
// may break it, whether its renewals fail at once or hang.
func TestBackendLockerReportsLossBeforeALeaseItCannotRenewEnds(t *testing.T) {
	// The loss comes a twelfth of the term before its end: half a second
	// for this goroutine to wake on a loaded machine. The two cases run
	// side by side, each for about a term.
	const ttl = 6 * time.Second
	var wg sync.WaitGroup
	for _, hang := range []bool{false, true} {
		wg.Go(func() { backendLossBeforeLeaseEnds(t, ttl, hang) })
	}
	wg.Wait()
}

// backendLossBeforeLeaseEnds cuts a holder off just after its first
// renewal; being off the test's goroutine, it reports with t.Errorf.
func backendLossBeforeLeaseEnds(t *testing.T, ttl time.Duration, hang bool) {
	ctx := context.Background()
	path := lockPath("repo/x/0001")
	d := &unreachable{Driver: inmemory.New()}
	d.hang.Store(hang)
	l := &backendLocker{d: d, ttl: ttl, now: time.Now}
	unlock, lost, err := l.TryLockLost(ctx, "repo/x/0001")
	if err != nil {
		t.Errorf("hang %v: %v", hang, err)
		return
	}
	defer unlock()
	defer d.cut.Store(false) // the fake's hang knows no deadline but the caller's
	first, err := d.Driver.GetContent(ctx, path)
	if err != nil {
		t.Errorf("hang %v: %v", hang, err)
		return
	}
	// Cut just after a renewal is stored: the next is a third of a term
	// away, so none is under way at the cut.
	for deadline := time.Now().Add(ttl); ; time.Sleep(10 * time.Millisecond) {
		select {
		case <-lost:
			t.Errorf("hang %v: a lease kept by its holder reported lost", hang)
			return
		default:
		}
		raw, err := d.Driver.GetContent(ctx, path)
		if err != nil {
			t.Errorf("hang %v: %v", hang, err)
			return
		}
		if !bytes.Equal(raw, first) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("hang %v: the lease was not renewed within its term", hang)
			return
		}
	}
	d.cut.Store(true)
	// Read past the cut: the lease as last renewed.
	raw, err := d.Driver.GetContent(ctx, path)
	if err != nil {
		t.Errorf("hang %v: %v", hang, err)
		return
	}
	var held lease
	if err := json.Unmarshal(raw, &held); err != nil {
		t.Errorf("hang %v: %v", hang, err)
		return
	}
	select {
	case <-lost:
		if now := time.Now(); now.After(held.Expires) {
			t.Errorf("hang %v: loss reported only %v after the stored lease ended", hang, now.Sub(held.Expires))
		}
	case <-time.After(2 * ttl):
		t.Errorf("hang %v: a lease that could not be renewed was never reported lost", hang)
	}
}

// KeepLease renews on time, reports a lease gone at once, and reports a
// lease whose renewals fail, or hang past any deadline, before the term
// counted from the last good one ends.
func TestKeepLease(t *testing.T) {
	// The losses after failing renewals must come within the term's last
	// twelfth: a term of 6 s gives this goroutine half a second to wake on
	// a loaded machine. They run beside the rest, which has at least half
	// a second of slack at 1.2 s.
	const lossTTL = 6 * time.Second
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, hang := range []bool{false, true} {
		wg.Go(func() { keepLeaseLoss(t, lossTTL, hang) })
	}

	const ttl = 1200 * time.Millisecond
	var calls atomic.Int32
	stop, lost := KeepLease(ttl, time.Now(), func(context.Context) error { calls.Add(1); return nil })
	select {
	case <-lost:
		t.Fatal("a lease renewed every time reported lost")
	case <-time.After(3 * ttl):
	}
	stop()
	if n := calls.Load(); n < 5 {
		t.Fatalf("%d renewals in three terms, want about one every third of a term", n)
	}

	// One renewal failing, or hanging (given up in time for another),
	// the next getting through: nothing lost.
	for _, first := range []struct {
		what string
		fail func(context.Context) error
	}{
		{"failed", func(context.Context) error { return errors.New("unreachable for a moment") }},
		{"hung", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
	} {
		var once atomic.Bool
		stop, lost = KeepLease(ttl, time.Now(), func(ctx context.Context) error {
			if once.CompareAndSwap(false, true) {
				return first.fail(ctx)
			}
			return nil
		})
		select {
		case <-lost:
			t.Fatalf("a lease whose first renewal %s, the next got through, reported lost", first.what)
		case <-time.After(2 * ttl):
		}
		stop()
	}

	stop, lost = KeepLease(ttl, time.Now(), func(context.Context) error { return ErrLeaseGone })
	select {
	case <-lost:
	case <-time.After(ttl):
		t.Fatal("a lease gone was not reported at the first renewal")
	}
	stop()
}

// keepLeaseLoss lets one renewal through and fails (or hangs) the rest; the
// loss must come before the term counted from the good one ends. Being off
// the test's goroutine, it reports with t.Errorf.
func keepLeaseLoss(t *testing.T, ttl time.Duration, hang bool) {
	var failing atomic.Bool
	var lastGood atomic.Int64
	release := make(chan struct{})
	stop, lost := KeepLease(ttl, time.Now(), func(context.Context) error {
		if !failing.Load() {
			lastGood.Store(time.Now().UnixNano())
			return nil
		}
		if hang {
			<-release // a client that keeps no deadline
		}
		return errors.New("unreachable")
	})
	defer stop()
	defer close(release)
	for lastGood.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	failing.Store(true)
	select {
	case <-lost:
		if d := time.Since(time.Unix(0, lastGood.Load())); d >= ttl {
			t.Errorf("hang %v: loss reported %v after the last good renewal, past its term of %v", hang, d, ttl)
		}
	case <-time.After(2 * ttl):
		t.Errorf("hang %v: renewals failing past the term were never reported", hang)
	}
}

// lostAnswer writes a Create and then reports ErrExists, as an S3 client
// does when the answer to its conditional PUT is lost and its retry finds
// the object the first attempt wrote.
type lostAnswer struct{ driver.Driver }

func (l lostAnswer) Create(ctx context.Context, path string, content []byte) error {
	if err := l.Driver.Create(ctx, path, content); err != nil {
		return err
	}
	return driver.ErrExists
}

// A lease whose Create landed though its answer was lost is the caller's:
// it must not wait out its own lease as another's.
func TestLeaseCreatedByARetriedRequest(t *testing.T) {
	mem := inmemory.New()
	l := NewBackendLocker(lostAnswer{mem}, time.Minute)
	unlock, err := l.TryLock(context.Background(), "manifest-x")
	if err != nil {
		t.Fatalf("TryLock: %v, want the lease its own request wrote", err)
	}
	if _, err := NewBackendLocker(mem, time.Minute).TryLock(context.Background(), "manifest-x"); !errors.Is(err, ErrLocked) {
		t.Fatalf("another locker: %v, want ErrLocked", err)
	}
	unlock()
	if _, err := mem.Stat(context.Background(), "/locks"); err == nil {
		t.Fatal("the lease is left behind after unlock")
	}
}

// takenMeanwhile writes another's lease at path once armed, just after the
// holder's renewal read its own: as another replica that broke the lease
// while the holder stalled past its term.
type takenMeanwhile struct {
	*inmemory.Driver
	path  string
	armed atomic.Bool
}

var anothers = []byte(`{"token":"another","expires":"2100-01-01T00:00:00Z"}`)

func (d *takenMeanwhile) take(ctx context.Context, path string) {
	if path == d.path && d.armed.CompareAndSwap(true, false) {
		d.Driver.PutContent(ctx, path, anothers)
	}
}

func (d *takenMeanwhile) GetContent(ctx context.Context, path string) ([]byte, error) {
	b, err := d.Driver.GetContent(ctx, path)
	d.take(ctx, path)
	return b, err
}

func (d *takenMeanwhile) ReplaceObjectIf(ctx context.Context, path string, old, content []byte) (bool, error) {
	d.take(ctx, path) // its read done, its write not yet
	return d.Driver.ReplaceObjectIf(ctx, path, old, content)
}

// A renewal never writes its lease back over one another took between its
// read and its write: the other keeps the key, and the holder hears of
// the loss.
func TestRenewalKeepsALeaseTakenMeanwhile(t *testing.T) {
	ctx := context.Background()
	path := lockPath("repo/x/0002")
	d := &takenMeanwhile{Driver: inmemory.New(), path: path}
	l := &backendLocker{d: d, ttl: 600 * time.Millisecond, now: time.Now}
	unlock, lost, err := l.TryLockLost(ctx, "repo/x/0002")
	if err != nil {
		t.Fatal(err)
	}
	d.armed.Store(true) // the first renewal, at a third of the term
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("a lease taken by another was never reported lost")
	}
	unlock()
	if got, err := d.Driver.GetContent(ctx, path); err != nil || !bytes.Equal(got, anothers) {
		t.Fatalf("the other's lease was written over: %s, %v", got, err)
	}
}

// answersLost applies the lease renewals' writes but loses the answers of
// the first and third: the first as an error (its answer late), the third
// as a refusal (its retry, with the old If-Match, met the write itself).
type answersLost struct {
	*inmemory.Driver
	calls atomic.Int32
}

func (d *answersLost) ReplaceObjectIf(ctx context.Context, path string, old, content []byte) (bool, error) {
	ok, err := d.Driver.ReplaceObjectIf(ctx, path, old, content)
	switch d.calls.Add(1) {
	case 1:
		return false, errors.New("i/o timeout")
	case 3:
		return false, nil
	}
	return ok, err
}

// A renewal whose own write landed though its answer said otherwise keeps
// the lease: the holder is not told it lost what it holds.
func TestRenewalLandedWithItsAnswerLostKeepsTheLease(t *testing.T) {
	ctx := context.Background()
	d := &answersLost{Driver: inmemory.New()}
	l := &backendLocker{d: d, ttl: 600 * time.Millisecond, now: time.Now}
	unlock, lost, err := l.TryLockLost(ctx, "repo/x/0003")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	deadline := time.After(5 * time.Second)
	for d.calls.Load() < 5 {
		select {
		case <-lost:
			t.Fatalf("lease reported lost after %d renewals, though every write landed", d.calls.Load())
		case <-deadline:
			t.Fatalf("only %d renewals", d.calls.Load())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
