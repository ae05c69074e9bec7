package server

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/lading-registry/lading/auth"
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
