package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// nextLink extracts the target of a Link: <...>; rel="next" header.
func nextLink(t testing.TB, h http.Header) string {
	t.Helper()
	link := h.Get("Link")
	if link == "" {
		return ""
	}
	target, rest, ok := strings.Cut(strings.TrimPrefix(link, "<"), ">")
	if !ok || strings.TrimSpace(rest) != `; rel="next"` {
		t.Fatalf("malformed Link %q", link)
	}
	return target
}

// collectPages follows Link headers from target and returns every page's
// entries, as picked out of the JSON body by entries.
func collectPages(t testing.TB, h http.Handler, target string, entries func([]byte) []string) []string {
	t.Helper()
	var all []string
	for pages := 0; target != ""; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		rec := serve(t, h, request{method: "GET", target: target})
		wantStatus(t, rec, 200, "")
		all = append(all, entries(rec.Body.Bytes())...)
		target = nextLink(t, rec.Header())
	}
	return all
}

func TestTagsPagination(t *testing.T) {
	h := newHandler(t, Options{})
	payload := imageManifest(t, h, "a", nil)
	tags := []string{"a1", "b2", "c3", "d4", "e5"}
	for _, tag := range tags {
		wantStatus(t, putManifest(t, h, "a", tag, payload), 201, "")
	}
	all := collectPages(t, h, "/v2/a/tags/list?n=2", func(body []byte) []string {
		var list tagList
		if err := json.Unmarshal(body, &list); err != nil || list.Name != "a" || len(list.Tags) > 2 {
			t.Fatalf("page %s (%v)", body, err)
		}
		return list.Tags
	})
	if strings.Join(all, ",") != strings.Join(tags, ",") {
		t.Fatalf("paged tags %v", all)
	}

	rec := serve(t, h, request{method: "GET", target: "/v2/a/tags/list?last=b2"})
	if !strings.Contains(rec.Body.String(), `"tags":["c3","d4","e5"]`) || rec.Header().Get("Link") != "" {
		t.Fatalf("after b2: %s %v", rec.Body, rec.Header())
	}
	rec = serve(t, h, request{method: "GET", target: "/v2/a/tags/list?n=0"})
	if !strings.Contains(rec.Body.String(), `"tags":[]`) {
		t.Fatalf("n=0: %s", rec.Body)
	}
	// An empty page of a repository that is not there is NAME_UNKNOWN too.
	rec = serve(t, h, request{method: "GET", target: "/v2/nope/tags/list?n=0"})
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "NAME_UNKNOWN") {
		t.Fatalf("n=0 of a missing repository: %d %s", rec.Code, rec.Body)
	}
}

func TestCatalogPagination(t *testing.T) {
	h := newHandler(t, Options{})
	repos := []string{"a", "a/b", "b", "c-d"}
	for _, repo := range repos {
		payload := imageManifest(t, h, repo, nil)
		wantStatus(t, putManifest(t, h, repo, "latest", payload), 201, "")
	}
	all := collectPages(t, h, "/v2/_catalog?n=3", func(body []byte) []string {
		var list catalogList
		if err := json.Unmarshal(body, &list); err != nil || len(list.Repositories) > 3 {
			t.Fatalf("page %s (%v)", body, err)
		}
		return list.Repositories
	})
	if strings.Join(all, ",") != strings.Join(repos, ",") {
		t.Fatalf("catalog %v", all)
	}
}

func TestParsePage(t *testing.T) {
	tests := []struct {
		query string
		want  pageRequest
		bad   bool
	}{
		{"", pageRequest{n: 7}, false},
		{"n=3&last=b", pageRequest{n: 3, last: "b"}, false},
		{"n=0", pageRequest{n: 0, none: true}, false},
		{"n=99999999", pageRequest{n: maxPage}, false},
		{"n=99999999999999999999999", pageRequest{}, true},
		{"n=-1", pageRequest{}, true},
		{"n=x", pageRequest{}, true},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		got, err := parsePage(q, 7)
		if (err != nil) != tt.bad || (!tt.bad && got != tt.want) {
			t.Errorf("parsePage(%q) = %+v, %v", tt.query, got, err)
		}
	}
}

// Whatever answers GET answers HEAD, with the same status and headers and
// no body.
func TestHeadWhereGetIs(t *testing.T) {
	h := newHandler(t, Options{})
	payload := imageManifest(t, h, "a", nil)
	wantStatus(t, putManifest(t, h, "a", "latest", payload), 201, "")
	loc := startSession(t, h, "a")
	for _, target := range []string{"/v2/a/tags/list", "/v2/_catalog", "/v2/a/referrers/" + digest.FromBytes(payload).String(), loc} {
		get := serve(t, h, request{method: "GET", target: target})
		head := serve(t, h, request{method: "HEAD", target: target})
		if head.Code != get.Code || head.Body.Len() != 0 {
			t.Errorf("HEAD %s: %d with %d bytes; GET: %d", target, head.Code, head.Body.Len(), get.Code)
		}
		for _, k := range []string{"Content-Type", "Content-Length", "Range", "Location"} {
			if head.Header().Get(k) != get.Header().Get(k) {
				t.Errorf("HEAD %s: %s %q, GET's %q", target, k, head.Header().Get(k), get.Header().Get(k))
			}
		}
	}
}
