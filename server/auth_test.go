package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lading-registry/lading/auth"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// onlyRepo lets everyone do everything to one repository and see nothing else.
type onlyRepo string

func (o onlyRepo) Authorize(*http.Request, []auth.Access) (auth.Identity, error) {
	return auth.Anonymous, nil
}
func (o onlyRepo) Can(_ auth.Identity, a auth.Access) bool { return a.Name == string(o) }
func (o onlyRepo) Filter(_ auth.Identity, repos []string) []string {
	var kept []string
	for _, r := range repos {
		if r == string(o) {
			kept = append(kept, r)
		}
	}
	return kept
}

// A catalog page the caller may see none of still links to the next one,
// so a caller who may see few repositories still reaches them.
func TestCatalogFilteredPagesLeadOn(t *testing.T) {
	h := newHandler(t, Options{Authorizer: onlyRepo("e")})
	for _, repo := range []string{"a", "b", "c", "d", "e"} {
		pushBlob(t, h, repo, []byte(repo))
	}
	target, seen := "/v2/_catalog?n=2", []string{}
	for pages := 0; target != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		rec := serve(t, h, request{method: http.MethodGet, target: target})
		var list struct{ Repositories []string }
		if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, list.Repositories...)
		target = nextLink(t, rec.Header())
	}
	if len(seen) != 1 || seen[0] != "e" {
		t.Fatalf("saw %v through the pages, want [e]", seen)
	}
}

// A mount's challenge names pull on its source beside the target's pull
// and push, so that a client fetching what it is challenged for can mount;
// an invalid source is not named.
func TestMountChallengeNamesTheSource(t *testing.T) {
	h := newHandler(t, Options{Authorizer: &auth.Bearer{Realm: "https://auth.test/token", Service: "registry.test", Keys: &auth.KeySet{}}})
	d := "sha256:" + strings.Repeat("a", 64)
	rec := serve(t, h, request{method: http.MethodPost, target: "/v2/dst/blobs/uploads/?mount=" + d + "&from=team/src"})
	if c := rec.Header().Get("WWW-Authenticate"); rec.Code != http.StatusUnauthorized || !strings.Contains(c, `scope="repository:dst:pull,push repository:team/src:pull"`) {
		t.Errorf("%d, challenge %s", rec.Code, c)
	}
	rec = serve(t, h, request{method: http.MethodPost, target: "/v2/dst/blobs/uploads/?mount=" + d + "&from=Not..Valid"})
	if c := rec.Header().Get("WWW-Authenticate"); rec.Code != http.StatusUnauthorized || !strings.Contains(c, `scope="repository:dst:pull,push"`) {
		t.Errorf("invalid source: %d, challenge %s", rec.Code, c)
	}
}

// walkCounter counts the listings of a folder.
type walkCounter struct {
	driver.Driver
	dir   string
	walks atomic.Int32
}

func (w *walkCounter) Walk(ctx context.Context, path, from string, fn driver.WalkFunc) error {
	if path == w.dir {
		w.walks.Add(1)
	}
	return w.Driver.Walk(ctx, path, from, fn)
}

// A caller who may see one repository of many reads the catalog once per
// page, not once per hundred names it may not see: anyone allowed the
// catalog could otherwise have one request read it thousands of times.
func TestCatalogFilteredInOneListing(t *testing.T) {
	drv := &walkCounter{Driver: inmemory.New(), dir: "/catalog"}
	reg := registry.New(drv, registry.Options{Logger: slog.New(slog.DiscardHandler)})
	h := New(reg, Options{Authorizer: onlyRepo("r999"), Logger: slog.New(slog.DiscardHandler)})
	for i := range 1000 {
		pushBlob(t, h, fmt.Sprintf("r%03d", i), []byte("x"))
	}
	drv.walks.Store(0)
	rec := serve(t, h, request{method: http.MethodGet, target: "/v2/_catalog?n=1"})
	if !strings.Contains(rec.Body.String(), `["r999"]`) {
		t.Fatalf("page %s", rec.Body)
	}
	if n := drv.walks.Load(); n != 1 {
		t.Errorf("the catalog was listed %d times for one page", n)
	}
}

// pullsNone may pull no repository, and says so.
type pullsNone struct{ visibleRepos }

func (pullsNone) PullsNothing(auth.Identity) bool { return true }

// A caller who may pull no repository at all gets an empty catalog without
// a reading of it, which for a large registry cost a quarter of a second
// at each request.
func TestCatalogOfACallerWhoPullsNothingIsNotRead(t *testing.T) {
	drv := &walkCounter{Driver: inmemory.New(), dir: "/catalog"}
	reg := registry.New(drv, registry.Options{Logger: slog.New(slog.DiscardHandler)})
	pushAll := New(reg, Options{Logger: slog.New(slog.DiscardHandler)})
	for _, repo := range []string{"a", "b"} {
		pushBlob(t, pushAll, repo, []byte(repo))
	}
	h := New(reg, Options{Authorizer: pullsNone{}, Logger: slog.New(slog.DiscardHandler)})
	drv.walks.Store(0)
	rec := serve(t, h, request{method: http.MethodGet, target: "/v2/_catalog"})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"repositories":[]`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if n := drv.walks.Load(); n != 0 {
		t.Errorf("the catalog was read %d times for a caller who may pull nothing", n)
	}
}

// Neither a page's Link nor its presence tells of a name the caller may
// not see: a page leads on only to one it may.
func TestCatalogLinksNameNothingHidden(t *testing.T) {
	h := newHandler(t, Options{Authorizer: onlyRepo("b")})
	for _, repo := range []string{"a", "b", "c", "d"} {
		pushBlob(t, h, repo, []byte(repo))
	}
	for _, target := range []string{"/v2/_catalog?n=1", "/v2/_catalog?n=1&last=a", "/v2/_catalog?n=1&last=b", "/v2/_catalog?n=1&last=c"} {
		rec := serve(t, h, request{method: http.MethodGet, target: target})
		if link := rec.Header().Get("Link"); link != "" {
			t.Errorf("%s: Link %q, though no name the caller may see follows", target, link)
		}
		if strings.Contains(rec.Body.String(), `"c"`) || strings.Contains(rec.Body.String(), `"d"`) || strings.Contains(rec.Body.String(), `"a"`) {
			t.Errorf("%s: %s", target, rec.Body)
		}
	}
	h = newHandler(t, Options{Authorizer: visibleRepos{"a": true, "c": true}})
	for _, repo := range []string{"a", "b", "c", "d"} {
		pushBlob(t, h, repo, []byte(repo))
	}
	rec := serve(t, h, request{method: http.MethodGet, target: "/v2/_catalog?n=1"})
	if got := nextLink(t, rec.Header()); !strings.Contains(rec.Body.String(), `["a"]`) || got != "/v2/_catalog?last=a&n=1" {
		t.Fatalf("first page %s, next %q", rec.Body, got)
	}
	rec = serve(t, h, request{method: http.MethodGet, target: "/v2/_catalog?last=a&n=1"})
	if !strings.Contains(rec.Body.String(), `["c"]`) || rec.Header().Get("Link") != "" {
		t.Fatalf("second page %s, Link %q", rec.Body, rec.Header().Get("Link"))
	}
}

// visibleRepos lets anyone see and pull the repositories it names.
type visibleRepos map[string]bool

func (v visibleRepos) Authorize(*http.Request, []auth.Access) (auth.Identity, error) {
	return auth.Anonymous, nil
}
func (v visibleRepos) Can(_ auth.Identity, a auth.Access) bool { return v[a.Name] }
func (v visibleRepos) Filter(_ auth.Identity, repos []string) []string {
	var kept []string
	for _, r := range repos {
		if v[r] {
			kept = append(kept, r)
		}
	}
	return kept
}
