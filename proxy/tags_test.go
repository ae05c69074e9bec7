package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// upstreamListing answers team/app's tag list with pages of tags of size
// bytes each, n pages, counting the pages asked for.
func upstreamListing(t *testing.T, pages, perPage, size int, asked *atomic.Int64) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/team/app/tags/list" {
			w.WriteHeader(http.StatusOK)
			return
		}
		asked.Add(1)
		page := 0
		fmt.Sscan(r.URL.Query().Get("page"), &page)
		if page+1 < pages {
			w.Header().Set("Link", fmt.Sprintf(`</v2/team/app/tags/list?page=%d>; rel="next"`, page+1))
		}
		tags := make([]string, perPage)
		for i := range tags {
			tags[i] = fmt.Sprintf("%0*d", size, page*perPage+i)
		}
		fmt.Fprintf(w, `{"name":"team/app","tags":["%s"]}`, strings.Join(tags, `","`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A client paging through a list costs one listing upstream a TTL, and a
// list larger than a mirror reads is not read whole.
func TestTagListsKeptAndBounded(t *testing.T) {
	var asked atomic.Int64
	reg := registry.New(inmemory.New(), registry.Options{})
	m, err := New(reg, Options{RemoteURL: upstreamListing(t, 3, 100, 8, &asked), TagTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		tags, ok, err := m.Tags(context.Background(), "team/app")
		if err != nil || !ok || len(tags) != 300 {
			t.Fatalf("tags: %d %v %v", len(tags), ok, err)
		}
	}
	if asked.Load() != 3 {
		t.Errorf("%d pages asked upstream for five listings, want 3", asked.Load())
	}

	// 3 pages of 1000 tags of 8 KiB: 24 MiB, over the mirror's bound.
	asked.Store(0)
	big, err := New(reg, Options{RemoteURL: upstreamListing(t, 3, 1000, 8<<10, &asked), TagTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if tags, ok, err := big.Tags(context.Background(), "team/app"); ok || err != nil || tags != nil {
			t.Fatalf("an upstream list over the bound: %d tags, %v, %v; want the local list instead", len(tags), ok, err)
		}
	}
	if asked.Load() > 3 {
		t.Errorf("%d pages asked for three listings of a list over the bound, want it read once", asked.Load())
	}
}

// An upstream's 429 holds every request back for as long as its
// Retry-After says (bounded), and the client is told to wait as long.
func TestUpstreamRetryAfterHoldsRequestsBack(t *testing.T) {
	var asked atomic.Int64 // every request, pings included
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	t.Cleanup(srv.Close)
	m, err := New(registry.New(inmemory.New(), registry.Options{}), Options{RemoteURL: srv.URL, TagTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i, repo := range []string{"team/app", "team/app", "other/x", "third/y"} {
		err := m.Manifest(context.Background(), repo, "v1")
		var ra interface{ RetryAfter() time.Duration }
		if e, ok := registry.AsError(err); !ok || e.Code != registry.CodeTooManyRequests || !errors.As(err, &ra) ||
			ra.RetryAfter() <= 25*time.Second || ra.RetryAfter() > 30*time.Second {
			t.Fatalf("pull %d: %v, want TOOMANYREQUESTS asking to wait about 30s", i, err)
		}
	}
	if asked.Load() != 2 {
		t.Errorf("the upstream was asked %d times in its Retry-After, want twice (a ping, a HEAD)", asked.Load())
	}
	// Measured on the monotonic clock, and never longer than the bound,
	// whatever the wall clock does.
	m.up.hold(time.Hour)
	if got := m.up.held(); got != maxRetryAfter {
		t.Errorf("a hold of an hour holds %v, want %v", got, maxRetryAfter)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"30": 30 * time.Second, "0": time.Second, "": time.Second, "soon": time.Second, "86400": maxRetryAfter,
		"10000000000": maxRetryAfter, "99999999999999999999": maxRetryAfter, "-5": time.Second,
		now.Add(2 * time.Minute).Format(http.TimeFormat): 2 * time.Minute,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %v, want %v", v, got, want)
		}
	}
}
