package registry

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// withImmutable runs fn on a fresh registry over every backend whose tags
// matching spec are immutable.
func withImmutable(t *testing.T, spec string, fn func(t *testing.T, reg *Registry)) {
	rules, err := glob.ParseTagRules(spec)
	if err != nil {
		t.Fatal(err)
	}
	forEachDriverWith(t, Options{ImmutableTags: rules}, fn)
}

func TestImmutableTags(t *testing.T) {
	withImmutable(t, "v*, prod/**:stable", func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "app")
		first, d1 := f.pushImage("v1")
		second := mustJSON(t, f.image())

		// Moving it is refused, by tag and as an extra tag of a push by
		// digest; the tag stays where it was.
		_, err := f.ms.Put(f.ctx, "v1", "", second)
		wantErrCode(t, err, CodeDenied)
		d2 := digest.FromBytes(second)
		_, err = f.ms.Put(f.ctx, d2.String(), "", second, "v1")
		wantErrCode(t, err, CodeDenied)
		if got, err := f.ms.Stat(f.ctx, "v1"); err != nil || got.Digest != d1 {
			t.Fatalf("v1 after refused moves: %v %v, want %s", got.Digest, err, d1)
		}
		// The same manifest again is a retried push, and goes.
		f.put("v1", first)
		// A tag no rule names moves freely, in any repository; a scoped rule
		// binds only its repositories.
		f.put("latest", first)
		f.put("latest", second)
		f.put("stable", first)
		f.put("stable", second)
		prod := newFixture(t, reg, "prod/web")
		prodFirst, _ := prod.pushImage("stable")
		_, err = prod.ms.Put(prod.ctx, "stable", "", mustJSON(t, prod.image()))
		wantErrCode(t, err, CodeDenied)

		// Its delete is refused, and the delete by digest of what it names,
		// which would take it along; the manifest is still there.
		wantErrCode(t, f.ms.Delete(f.ctx, "v1"), CodeDenied)
		wantErrCode(t, f.ms.Delete(f.ctx, d1.String()), CodeDenied)
		if _, err := f.ms.Get(f.ctx, "v1"); err != nil {
			t.Fatal(err)
		}
		// A tag not there is still unknown to a delete.
		wantErrCode(t, f.ms.Delete(f.ctx, "v9"), CodeManifestUnknown)
		// Mutable tags go, and a manifest only they name.
		if err := f.ms.Delete(f.ctx, "latest"); err != nil {
			t.Fatal(err)
		}
		if err := f.ms.Delete(f.ctx, d2.String()); err != nil {
			t.Fatal(err)
		}
		// A scoped rule guards the deletes of its repositories too.
		if err := prod.ms.Delete(prod.ctx, digest.FromBytes(prodFirst).String()); !errors.Is(err, &Error{Code: CodeDenied}) {
			t.Fatalf("delete of the manifest prod/web:stable names: %v", err)
		}
	})
}

// Two first pushes of one immutable tag, of different manifests, take
// turns: one wins, the others are refused, and the tag names the winner's.
func TestImmutableTagFirstPushesRace(t *testing.T) {
	withImmutable(t, "v*", func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "race")
		const writers = 8
		payloads := make([][]byte, writers)
		for i := range payloads {
			payloads[i] = mustJSON(t, f.image())
		}
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Go(func() { _, errs[i] = f.ms.Put(f.ctx, "v1", "", payloads[i]) })
		}
		wg.Wait()
		var won []int
		for i, err := range errs {
			if err == nil {
				won = append(won, i)
			} else if e, ok := AsError(err); !ok || e.Code != CodeDenied {
				t.Errorf("writer %d: %v", i, err)
			}
		}
		if len(won) != 1 {
			t.Fatalf("%d pushes succeeded, want 1", len(won))
		}
		got, err := f.ms.Stat(f.ctx, "v1")
		if err != nil || got.Digest != digest.FromBytes(payloads[won[0]]) {
			t.Fatalf("v1 names %s (%v), the winner pushed %s", got.Digest, err, digest.FromBytes(payloads[won[0]]))
		}
	})
}

// holdKey marks the context of the one call whose tag read a test driver
// holds or fails.
type holdKey struct{}

// tagReadDriver holds (reached, then release) or fails (fail) the tag
// reads made under holdKey.
type tagReadDriver struct {
	driver.Driver
	reached, release chan struct{}
	fail             bool
}

func (d *tagReadDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if ctx.Value(holdKey{}) == nil || !strings.Contains(p, "/_tags/") {
		return d.Driver.GetContent(ctx, p)
	}
	if d.fail {
		return nil, context.DeadlineExceeded // a storage read that timed out
	}
	b, err := d.Driver.GetContent(ctx, p)
	close(d.reached)
	<-d.release
	return b, err
}

// A tag that cannot be read may be there: deletes that would take it are
// refused, whatever the error.
func TestImmutableTagSurvivesAFailedRead(t *testing.T) {
	rules, _ := glob.ParseTagRules("v*")
	drv := &tagReadDriver{Driver: driver.Instrument(inmemory.New(), nil), fail: true}
	f := newFixture(t, New(drv, Options{ImmutableTags: rules}), "app")
	_, d := f.pushImage("v1")
	failing := context.WithValue(f.ctx, holdKey{}, true)
	for _, ref := range []string{"v1", d.String()} {
		if err := f.ms.Delete(failing, ref); err == nil {
			t.Errorf("delete of %s while the tag cannot be read: nil", ref)
		}
		if got, err := f.ms.Stat(f.ctx, "v1"); err != nil || got.Digest != d {
			t.Fatalf("v1 after a refused delete of %s: %v %v", ref, got.Digest, err)
		}
	}
}

// A tag delete that finds an immutable tag absent holds it until it is
// done: a first push landing meanwhile keeps the tag it was told it made.
func TestImmutableTagDeleteTakesTurnsWithAFirstPush(t *testing.T) {
	rules, _ := glob.ParseTagRules("v*")
	drv := &tagReadDriver{Driver: driver.Instrument(inmemory.New(), nil), reached: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, New(drv, Options{ImmutableTags: rules}), "app")
	payload := mustJSON(t, f.image())
	f.put("latest", payload)

	deleted := make(chan error, 1)
	go func() { deleted <- f.ms.Delete(context.WithValue(f.ctx, holdKey{}, true), "v1") }()
	<-drv.reached // the delete found v1 absent
	pushed := make(chan error, 1)
	go func() { _, err := f.ms.Put(f.ctx, "v1", "", payload); pushed <- err }()
	select {
	case err := <-pushed: // without the lock, the push lands now
		pushed <- err
	case <-time.After(300 * time.Millisecond): // with it, it waits
	}
	close(drv.release)
	if err := <-deleted; !errors.Is(err, ErrManifestUnknown) {
		t.Errorf("delete of v1 not there yet: %v", err)
	}
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	if _, err := f.ms.Stat(f.ctx, "v1"); err != nil {
		t.Errorf("the first push of v1, acknowledged, then: %v", err)
	}
}
