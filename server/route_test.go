package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
)

func TestParseRoute(t *testing.T) {
	d := digest.FromString("x").String()
	tests := []struct {
		method, path string
		want         Route
	}{
		{"GET", "/v2/", Route{Name: RouteBase}},
		{"GET", "/v2", Route{Name: RouteBase}},
		{"GET", "/v2/_catalog", Route{Name: RouteCatalog, Action: ActionPull}},
		{"GET", "/v2/a/tags/list", Route{Name: RouteTags, Repository: "a", Action: ActionPull}},
		{"GET", "/v2/a/b/c/manifests/latest", Route{Name: RouteManifest, Repository: "a/b/c", Reference: "latest", Action: ActionPull}},
		{"PUT", "/v2/a/manifests/" + d, Route{Name: RouteManifest, Repository: "a", Reference: d, Action: ActionPush}},
		{"DELETE", "/v2/a/blobs/" + d, Route{Name: RouteBlob, Repository: "a", Reference: d, Action: ActionDelete}},
		{"POST", "/v2/a/blobs/uploads/", Route{Name: RouteUploadStart, Repository: "a", Action: ActionPush}},
		{"POST", "/v2/a/blobs/uploads", Route{Name: RouteUploadStart, Repository: "a", Action: ActionPush}},
		{"POST", "/v2/a/blobs/uploads/?mount=" + d + "&from=b/c", Route{Name: RouteUploadStart, Repository: "a", Action: ActionPush, MountFrom: "b/c"}},
		{"PATCH", "/v2/a/blobs/uploads/abc-1", Route{Name: RouteUpload, Repository: "a", Reference: "abc-1", Action: ActionPush}},
		{"DELETE", "/v2/a/blobs/uploads/abc-1", Route{Name: RouteUpload, Repository: "a", Reference: "abc-1", Action: ActionPush}},
		{"GET", "/v2/a/referrers/" + d, Route{Name: RouteReferrers, Repository: "a", Reference: d, Action: ActionPull}},
		// Components named like endpoint keywords belong to the name.
		{"GET", "/v2/blobs/manifests/tags", Route{Name: RouteManifest, Repository: "blobs", Reference: "tags", Action: ActionPull}},
		{"GET", "/v2/x/blobs/blobs/" + d, Route{Name: RouteBlob, Repository: "x/blobs", Reference: d, Action: ActionPull}},
		{"POST", "/v2/x/blobs/uploads/blobs/uploads/", Route{Name: RouteUploadStart, Repository: "x/blobs/uploads", Action: ActionPush}},
		{"GET", "/v2/tags/list/tags/list", Route{Name: RouteTags, Repository: "tags/list", Action: ActionPull}},
		{"GET", "/v2/manifests/manifests/manifests", Route{Name: RouteManifest, Repository: "manifests", Reference: "manifests", Action: ActionPull}},
		// A percent-encoded colon in a digest is only a spelling.
		{"GET", "/v2/a/blobs/sha256%3A" + strings.TrimPrefix(d, "sha256:"), Route{Name: RouteBlob, Repository: "a", Reference: d, Action: ActionPull}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			got, err := parseRoute(httptest.NewRequest(tt.method, tt.path, nil))
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestBadRequests covers every client mistake the API names: each gets its
// status and OCI code, never a 5xx, never a redirect (serve checks both).
func TestBadRequests(t *testing.T) {
	h := newHandler(t, Options{})
	unknown := digest.FromString("never pushed").String()
	long := strings.Repeat("a", registry.MaxNameLength+1)
	tests := []struct {
		name   string
		req    request
		status int
		code   registry.Code
	}{
		{"dotdot", request{method: "GET", target: "/v2/a/../b/manifests/latest"}, 400, registry.CodeNameInvalid},
		{"dotdot at start", request{method: "GET", target: "/v2/../v2/a/manifests/latest"}, 400, registry.CodeNameInvalid},
		{"dot", request{method: "GET", target: "/v2/a/./b/manifests/latest"}, 400, registry.CodeNameInvalid},
		{"double slash", request{method: "GET", target: "/v2/a//b/manifests/latest"}, 400, registry.CodeNameInvalid},
		{"double slash after v2", request{method: "GET", target: "/v2//a/manifests/latest"}, 400, registry.CodeNameInvalid},
		{"encoded slash", request{method: "GET", target: "/v2/a%2Fb/manifests/latest"}, 400, registry.CodeNameInvalid},
		{"encoded slash lower", request{method: "GET", target: "/v2/a%2fb/tags/list"}, 400, registry.CodeNameInvalid},
		{"encoded dotdot", request{method: "GET", target: "/v2/a/%2E%2E/b/manifests/latest"}, 400, registry.CodeNameInvalid},
		{"encoded dotdot reference", request{method: "GET", target: "/v2/a/manifests/%2e%2e"}, 400, registry.CodeNameInvalid},
		{"encoded backslash", request{method: "GET", target: "/v2/a%5Cb/manifests/latest"}, 400, registry.CodeNameInvalid},
		{"encoded letter in name", request{method: "GET", target: "/v2/%61/manifests/latest"}, 400, registry.CodeNameInvalid},
		{"uppercase name", request{method: "GET", target: "/v2/Upper/manifests/latest"}, 400, registry.CodeNameInvalid},
		{"name too long", request{method: "GET", target: "/v2/" + long + "/tags/list"}, 400, registry.CodeNameInvalid},
		{"name with underscore component", request{method: "GET", target: "/v2/a/_uploads/manifests/latest"}, 400, registry.CodeNameInvalid},
		{"bad tag", request{method: "GET", target: "/v2/a/manifests/-tag"}, 400, registry.CodeTagInvalid},
		{"tag too long", request{method: "GET", target: "/v2/a/manifests/" + strings.Repeat("t", 129)}, 400, registry.CodeTagInvalid},
		{"put bad tag", request{method: "PUT", target: "/v2/a/manifests/.tag", body: []byte("{}")}, 400, registry.CodeTagInvalid},
		{"put bad tag param", request{method: "PUT", target: "/v2/a/manifests/" + unknown + "?tag=-x", body: []byte("{}")}, 400, registry.CodeTagInvalid},
		{"bad manifest digest", request{method: "GET", target: "/v2/a/manifests/sha256:baddigeststring"}, 400, registry.CodeDigestInvalid},
		{"put bad manifest digest", request{method: "PUT", target: "/v2/a/manifests/sha256:baddigeststring", body: []byte("{}")}, 400, registry.CodeDigestInvalid},
		{"bad blob digest", request{method: "GET", target: "/v2/a/blobs/sha256:abc"}, 400, registry.CodeDigestInvalid},
		{"unsupported algorithm", request{method: "GET", target: "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e"}, 400, registry.CodeDigestInvalid},
		{"bad referrers digest", request{method: "GET", target: "/v2/a/referrers/nope"}, 400, registry.CodeDigestInvalid},
		{"bad digest on monolithic post", request{method: "POST", target: "/v2/a/blobs/uploads/?digest=sha256:zz", body: []byte("x")}, 400, registry.CodeDigestInvalid},
		{"bad mount digest", request{method: "POST", target: "/v2/a/blobs/uploads/?mount=sha256:zz&from=b"}, 400, registry.CodeDigestInvalid},
		{"bad mount source", request{method: "POST", target: "/v2/a/blobs/uploads/?mount=" + unknown + "&from=B"}, 400, registry.CodeNameInvalid},
		{"bad tags page size", request{method: "GET", target: "/v2/a/tags/list?n=-1"}, 400, registry.CodeUnsupported},
		{"bad tags last", request{method: "GET", target: "/v2/a/tags/list?last=../x"}, 400, registry.CodeTagInvalid},
		{"bad catalog page size", request{method: "GET", target: "/v2/_catalog?n=ten"}, 400, registry.CodeUnsupported},
		{"unknown blob", request{method: "GET", target: "/v2/a/blobs/" + unknown}, 404, registry.CodeBlobUnknown},
		{"unknown blob head", request{method: "HEAD", target: "/v2/a/blobs/" + unknown}, 404, ""},
		{"unknown blob delete", request{method: "DELETE", target: "/v2/a/blobs/" + unknown}, 404, registry.CodeBlobUnknown},
		{"unknown manifest by tag", request{method: "GET", target: "/v2/a/manifests/nope"}, 404, ""},
		{"unknown manifest by digest", request{method: "GET", target: "/v2/a/manifests/" + unknown}, 404, ""},
		{"unknown upload", request{method: "GET", target: "/v2/a/blobs/uploads/0b0fc0c4-1b7c-4c1e-9a4e-0c1d2e3f4a5b"}, 404, registry.CodeBlobUploadUnknown},
		{"unknown upload patch", request{method: "PATCH", target: "/v2/a/blobs/uploads/0b0fc0c4-1b7c-4c1e-9a4e-0c1d2e3f4a5b", body: []byte("x")}, 404, registry.CodeBlobUploadUnknown},
		{"unknown upload put", request{method: "PUT", target: "/v2/a/blobs/uploads/0b0fc0c4?digest=" + unknown}, 404, registry.CodeBlobUploadUnknown},
		{"unknown upload cancel", request{method: "DELETE", target: "/v2/a/blobs/uploads/0b0fc0c4"}, 404, registry.CodeBlobUploadUnknown},
		{"malformed upload id", request{method: "GET", target: "/v2/a/blobs/uploads/a.b"}, 404, registry.CodeBlobUploadUnknown},
		{"put upload without digest", request{method: "PUT", target: "/v2/a/blobs/uploads/0b0fc0c4-1b7c-4c1e-9a4e-0c1d2e3f4a5b"}, 400, registry.CodeDigestInvalid},
		{"unknown manifest delete", request{method: "DELETE", target: "/v2/a/manifests/" + unknown}, 404, ""},
		{"bad tag delete", request{method: "DELETE", target: "/v2/a/manifests/-x"}, 400, registry.CodeTagInvalid},
		{"bad digest delete", request{method: "DELETE", target: "/v2/a/blobs/sha256:0"}, 400, registry.CodeDigestInvalid},
		{"unknown endpoint", request{method: "GET", target: "/v2/a/things/x"}, 404, registry.CodeUnsupported},
		{"not v2", request{method: "GET", target: "/v1/a/manifests/latest"}, 404, registry.CodeUnsupported},
		{"v2 prefix only", request{method: "GET", target: "/v2x/"}, 404, registry.CodeUnsupported},
		{"root", request{method: "GET", target: "/"}, 404, registry.CodeUnsupported},
		{"no name", request{method: "GET", target: "/v2/manifests/latest"}, 404, registry.CodeUnsupported},
		{"post manifest", request{method: "POST", target: "/v2/a/manifests/latest"}, 405, registry.CodeUnsupported},
		{"patch blob", request{method: "PATCH", target: "/v2/a/blobs/" + unknown}, 405, registry.CodeUnsupported},
		{"delete tags", request{method: "DELETE", target: "/v2/a/tags/list"}, 405, registry.CodeUnsupported},
		{"put catalog", request{method: "PUT", target: "/v2/_catalog"}, 405, registry.CodeUnsupported},
		{"post base", request{method: "POST", target: "/v2/"}, 405, registry.CodeUnsupported},
		{"get upload start", request{method: "GET", target: "/v2/a/blobs/uploads/"}, 405, registry.CodeUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, h, tt.req)
			wantStatus(t, rec, tt.status, tt.code)
			if tt.status == http.StatusMethodNotAllowed && rec.Header().Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

// TestNoRedirectOverTheWire sends unclean paths through a real listener, to
// be sure nothing between the socket and the router cleans them.
func TestNoRedirectOverTheWire(t *testing.T) {
	srv := httptest.NewServer(newHandler(t, Options{}))
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, path := range []string{"/v2/a/../b/tags/list", "/v2//a/tags/list", "/v2/a/./tags/list", "/v2/a%2Fb/tags/list", "/v2/../../etc/passwd"} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", path, resp.StatusCode)
		}
	}
}

func TestBase(t *testing.T) {
	h := newHandler(t, Options{})
	rec := serve(t, h, request{method: "GET", target: "/v2/"})
	wantStatus(t, rec, 200, "")
	if got := rec.Header().Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
		t.Fatalf("Docker-Distribution-API-Version %q", got)
	}
}

func FuzzRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/b/manifests/latest", "/v2/a/blobs/uploads/", "/v2/a%2Fb/tags/list", "/v2/a/../b", "/v2//x/blobs/sha256:00"} {
		f.Add("GET", s)
	}
	h := newHandler(f, Options{})
	f.Fuzz(func(t *testing.T, method, path string) {
		req, err := http.NewRequest(method, "http://x"+path, nil)
		if err != nil || req.URL.Host != "x" {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 || (rec.Code >= 300 && rec.Code < 400) {
			t.Fatalf("%s %q: status %d", method, path, rec.Code)
		}
	})
}
