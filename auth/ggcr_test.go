package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// The repositories of the stand-in registry below.
var dummyRepos = []string{"carol/x", "public/busybox", "secret/db", "team/app"}

// dummyRegistry stands in for the server: a few /v2/ routes, each asking
// the Authorizer for what it needs, the catalog filtered by it.
func dummyRegistry(a Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/v2/")
		var need []Access
		status := http.StatusOK
		switch {
		case r.URL.Path == "/v2/":
		case p == "_catalog":
			need = []Access{Catalog}
		case strings.HasSuffix(p, "/tags/list") && r.Method == http.MethodGet:
			need = []Access{Repository(strings.TrimSuffix(p, "/tags/list"), ActionPull)}
		case strings.HasSuffix(p, "/blobs/uploads/") && r.Method == http.MethodPost:
			need = []Access{Repository(strings.TrimSuffix(p, "/blobs/uploads/"), ActionPull, ActionPush)}
			status = http.StatusAccepted
		case strings.Contains(p, "/manifests/") && r.Method == http.MethodDelete:
			name, _, _ := strings.Cut(p, "/manifests/")
			need = []Access{Repository(name, ActionDelete)}
			status = http.StatusAccepted
		default:
			http.NotFound(w, r)
			return
		}
		id, err := a.Authorize(r, need)
		if err != nil {
			writeErrors(w, err)
			return
		}
		if p == "_catalog" {
			json.NewEncoder(w).Encode(map[string][]string{"repositories": a.Filter(id, dummyRepos)})
			return
		}
		w.WriteHeader(status)
	})
}

// newAuthFromFiles builds auth the way the server will, from files.
func newAuthFromFiles(t *testing.T, cfg Config) *Auth {
	t.Helper()
	dir := t.TempDir()
	cfg.Htpasswd.Path = filepath.Join(dir, "htpasswd")
	cfg.Policy = filepath.Join(dir, "policy.yaml")
	os.WriteFile(cfg.Htpasswd.Path, htpasswdFor(t, "alice", "bob", "carol", "mallory"), 0o600)
	os.WriteFile(cfg.Policy, []byte(testPolicy), 0o600)
	a, err := New(cfg, quietLogger)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// client is go-containerregistry's transport for one repository and scope,
// logged in as user ("" anonymous); the error is the handshake's.
func client(t *testing.T, srv *httptest.Server, user, pass, repo string, actions ...string) (*http.Client, error) {
	t.Helper()
	reg, err := name.NewRegistry(strings.TrimPrefix(srv.URL, "http://"), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var auth authn.Authenticator = authn.Anonymous
	if user != "" {
		auth = &authn.Basic{Username: user, Password: pass}
	}
	scope := reg.Repo(repo).Scope(strings.Join(actions, ","))
	tr, err := transport.NewWithContext(t.Context(), reg, auth, http.DefaultTransport, []string{scope})
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: tr}, nil
}

// send makes one request and returns the status and, for errors, the
// first OCI error code, as go-containerregistry reports it.
func send(t *testing.T, c *http.Client, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var terr *transport.Error
	if err := transport.CheckError(resp, http.StatusOK, http.StatusAccepted); errors.As(err, &terr) && len(terr.Errors) > 0 {
		return resp.StatusCode, string(terr.Errors[0].Code)
	}
	return resp.StatusCode, ""
}

func TestGoContainerRegistryClient(t *testing.T) {
	for _, mode := range []string{"basic", "bearer"} {
		t.Run(mode, func(t *testing.T) {
			var a *Auth
			if mode == "bearer" {
				a = newAuthFromFiles(t, Config{Token: TokenConfig{Service: testService, Server: TokenServerConfig{Enabled: true}}})
			} else {
				a = newAuthFromFiles(t, Config{})
			}
			srv := httptest.NewServer(a.Handler(dummyRegistry(a.Authorizer)))
			defer srv.Close()

			for _, tc := range []struct {
				user, repo, method, path string
				actions                  []string
				status                   int
				code                     string
			}{
				{"bob", "team/app", "GET", "/tags/list", []string{"pull"}, 200, ""},
				{"bob", "team/app", "POST", "/blobs/uploads/", []string{"pull", "push"}, 202, ""},
				{"bob", "public/busybox", "GET", "/tags/list", []string{"pull"}, 200, ""},
				{"bob", "public/busybox", "POST", "/blobs/uploads/", []string{"pull", "push"}, 403, "DENIED"},
				{"bob", "team/app", "DELETE", "/manifests/sha256:abc", []string{"delete"}, 403, "DENIED"},
				{"bob", "carol/x", "GET", "/tags/list", []string{"pull"}, 403, "DENIED"},
				{"carol", "carol/x", "DELETE", "/manifests/sha256:abc", []string{"*"}, 202, ""},
				{"alice", "secret/db", "DELETE", "/manifests/sha256:abc", []string{"delete"}, 202, ""},
				{"alice", "secret/db", "POST", "/blobs/uploads/", []string{"pull", "push"}, 202, ""},
				{"", "public/busybox", "GET", "/tags/list", []string{"pull"}, 200, ""},
				{"", "public/busybox", "POST", "/blobs/uploads/", []string{"pull", "push"}, 401, "UNAUTHORIZED"},
				{"", "team/app", "GET", "/tags/list", []string{"pull"}, 401, "UNAUTHORIZED"},
			} {
				c, err := client(t, srv, tc.user, password(tc.user), tc.repo, tc.actions...)
				if err != nil {
					t.Fatalf("%q handshake: %v", tc.user, err)
				}
				status, code := send(t, c, tc.method, srv.URL+"/v2/"+tc.repo+tc.path)
				if status != tc.status || code != tc.code {
					t.Errorf("%q %s %s: %d %s, want %d %s", tc.user, tc.method, tc.repo+tc.path, status, code, tc.status, tc.code)
				}
			}

			// A wrong password fails at the bearer handshake, or at the first
			// request with Basic.
			c, err := client(t, srv, "bob", "wrong", "team/app", "pull")
			if err == nil {
				status, code := send(t, c, "GET", srv.URL+"/v2/team/app/tags/list")
				err = errors.New(code)
				if status != 401 || code != "UNAUTHORIZED" {
					t.Errorf("wrong password: %d %s", status, code)
				}
			}
			if !strings.Contains(err.Error(), "UNAUTHORIZED") {
				t.Errorf("wrong password: %v", err)
			}
		})
	}
}

func TestGoContainerRegistryCatalog(t *testing.T) {
	a := newAuthFromFiles(t, Config{Token: TokenConfig{Server: TokenServerConfig{Enabled: true}}})
	srv := httptest.NewServer(a.Handler(dummyRegistry(a.Authorizer)))
	defer srv.Close()
	reg, _ := name.NewRegistry(strings.TrimPrefix(srv.URL, "http://"), name.Insecure)
	for user, want := range map[string][]string{
		"bob":   {"public/busybox", "team/app"},
		"alice": dummyRepos,
		"":      {"public/busybox"},
	} {
		var auth authn.Authenticator = authn.Anonymous
		if user != "" {
			auth = &authn.Basic{Username: user, Password: password(user)}
		}
		tr, err := transport.NewWithContext(t.Context(), reg, auth, http.DefaultTransport, []string{reg.Scope(transport.PullScope)})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/v2/_catalog")
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Repositories []string }
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !slices.Equal(body.Repositories, want) {
			t.Errorf("%q: %d %v, want %v", user, resp.StatusCode, body.Repositories, want)
		}
	}
}

// TestDockerLoginFlow walks the flow by hand: GET /v2/ is refused with a
// Bearer challenge, the client fetches a token with Basic credentials from
// the realm, and retries with it.
func TestDockerLoginFlow(t *testing.T) {
	a := newAuthFromFiles(t, Config{Token: TokenConfig{Service: testService, Server: TokenServerConfig{Enabled: true}}})
	srv := httptest.NewServer(a.Handler(dummyRegistry(a.Authorizer)))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := `Bearer realm="` + srv.URL + `/auth/token",service="registry.test"`
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("ping: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	req, _ := http.NewRequest("GET", srv.URL+"/auth/token?service=registry.test&account=bob&client_id=docker&offline_token=true", nil)
	req.SetBasicAuth("bob", password("bob"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tr tokenResponse
	json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if resp.StatusCode != 200 || tr.Token == "" || tr.RefreshToken == "" {
		t.Fatalf("token: %d %+v", resp.StatusCode, tr)
	}
	req, _ = http.NewRequest("GET", srv.URL+"/v2/", nil)
	req.Header.Set("Authorization", "Bearer "+tr.Token)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("retry with token: %v %v", resp.Status, err)
	}
	resp.Body.Close()
}
