package auth

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func newTestTokenServer(t *testing.T) *TokenServer {
	t.Helper()
	key, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	return &TokenServer{Service: testService, Issuer: testIssuer, Users: testUsers(t),
		Policy: mustPolicy(t, testPolicy), Key: key, Limiter: NewLimiter(0, 0), Logger: quietLogger}
}

// getToken asks ts for a token the way docker does; user "" is anonymous.
func getToken(t *testing.T, ts *TokenServer, user, pass string, query string) (*http.Response, tokenResponse) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, TokenPath+"?"+query, nil)
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	return decodeToken(t, do(t, ts, r))
}

func postToken(t *testing.T, ts *TokenServer, form url.Values) (*http.Response, tokenResponse) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, TokenPath, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return decodeToken(t, do(t, ts, r))
}

func decodeToken(t *testing.T, resp *http.Response) (*http.Response, tokenResponse) {
	t.Helper()
	var tr tokenResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
			t.Fatal(err)
		}
	}
	return resp, tr
}

// grants verifies a token as the registry would and returns its grants.
func grants(t *testing.T, ts *TokenServer, token string) (Identity, []string) {
	t.Helper()
	id, err := ts.Authorizer("").Verify(t.Context(), token)
	if err != nil {
		t.Fatalf("issued token does not verify: %v", err)
	}
	var out []string
	for _, a := range id.granted {
		slices.Sort(a.Actions)
		out = append(out, a.String())
	}
	return id, out
}

func TestTokenServerGrantsIntersection(t *testing.T) {
	ts := newTestTokenServer(t)
	for _, tc := range []struct {
		user  string
		scope []string
		want  []string
	}{
		{"bob", []string{"repository:team/app:pull,push"}, []string{"repository:team/app:pull,push"}},
		// More than allowed is no error: the token grants less.
		{"bob", []string{"repository:public/busybox:pull,push"}, []string{"repository:public/busybox:pull"}},
		{"bob", []string{"repository:team/app:*"}, []string{"repository:team/app:pull,push"}},
		{"bob", []string{"repository:carol/x:pull"}, nil},
		{"bob", []string{"repository:team/app:push repository:team/lib:pull", "repository:carol/x:pull"},
			[]string{"repository:team/app:push", "repository:team/lib:pull"}},
		{"alice", []string{"repository:x/y/z:*", "registry:catalog:*"}, []string{"repository:x/y/z:delete,pull,push", "registry:catalog:*"}},
		{"", []string{"repository:public/busybox:pull,push"}, []string{"repository:public/busybox:pull"}},
		{"", []string{"repository:team/app:pull"}, nil},
		{"bob", nil, nil}, // docker login asks for no scope
	} {
		q := url.Values{"service": {testService}, "scope": tc.scope}
		if tc.user != "" {
			q.Set("account", tc.user)
		}
		resp, tr := getToken(t, ts, tc.user, password(tc.user), q.Encode())
		if resp.StatusCode != 200 {
			t.Errorf("%q %v: status %d", tc.user, tc.scope, resp.StatusCode)
			continue
		}
		if tr.Token == "" || tr.Token != tr.AccessToken || tr.ExpiresIn != 300 || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("response %+v", tr)
		}
		if _, err := time.Parse(time.RFC3339, tr.IssuedAt); err != nil {
			t.Errorf("issued_at: %v", err)
		}
		id, got := grants(t, ts, tr.Token)
		if !slices.Equal(got, tc.want) || id.Name != tc.user {
			t.Errorf("%q %v: token for %q grants %v, want %v", tc.user, tc.scope, id.Name, got, tc.want)
		}
	}
}

func TestTokenServerRefusals(t *testing.T) {
	ts := newTestTokenServer(t)
	for _, tc := range []struct {
		name, user, pass, query string
		status                  int
	}{
		{"wrong password", "bob", "nope", "service=" + testService, 401},
		{"unknown user", "eve", "x", "service=" + testService, 401},
		{"other service", "bob", password("bob"), "service=elsewhere", 400},
		{"account not the user", "bob", password("bob"), "account=alice", 400},
		{"bad scope", "bob", password("bob"), "scope=repository", 400},
		// A query read in part would drop these checks, as the registry's
		// own routes refuse to.
		{"other service, malformed query", "bob", password("bob"), "service=elsewhere;x=1", 400},
		{"account not the user, malformed query", "bob", password("bob"), "account=alice;x", 400},
	} {
		resp, _ := getToken(t, ts, tc.user, tc.pass, tc.query)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), `"errors":[{"code":`) {
			t.Errorf("%s: body %s", tc.name, body)
		}
		if tc.status == 401 && resp.Header.Get("WWW-Authenticate") != `Basic realm="registry.test"` {
			t.Errorf("%s: challenge %q", tc.name, resp.Header.Get("WWW-Authenticate"))
		}
	}
	r := httptest.NewRequest(http.MethodPut, TokenPath, nil)
	if resp := do(t, ts, r); resp.StatusCode != 405 {
		t.Errorf("PUT: %d", resp.StatusCode)
	}
}

func TestTokenServerRateLimitsFailures(t *testing.T) {
	ts := newTestTokenServer(t)
	ts.Limiter = NewLimiter(2, time.Minute)
	for range 2 {
		getToken(t, ts, "bob", "guess", "")
	}
	resp, _ := getToken(t, ts, "bob", password("bob"), "")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "60" {
		t.Errorf("status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp, _ = postToken(t, ts, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {password("bob")}})
	if resp.StatusCode != 429 {
		t.Errorf("POST: status %d", resp.StatusCode)
	}
}

func TestTokenServerOAuth(t *testing.T) {
	ts := newTestTokenServer(t)
	resp, tr := postToken(t, ts, url.Values{
		"grant_type": {"password"}, "username": {"bob"}, "password": {password("bob")},
		"service": {testService}, "scope": {"repository:team/app:pull,push,delete"},
		"client_id": {"test"}, "access_type": {"offline"},
	})
	if resp.StatusCode != 200 || tr.AccessToken == "" || tr.RefreshToken == "" || tr.Scope != "repository:team/app:pull,push" {
		t.Fatalf("password grant: %d %+v", resp.StatusCode, tr)
	}
	// A refresh token never passes as an access token.
	if _, err := ts.Authorizer("").Verify(t.Context(), tr.RefreshToken); err == nil {
		t.Error("refresh token accepted by the registry")
	}
	refresh := tr.RefreshToken
	resp, tr = postToken(t, ts, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh},
		"service": {testService}, "scope": {"repository:team/lib:pull"}})
	if resp.StatusCode != 200 {
		t.Fatalf("refresh grant: %d", resp.StatusCode)
	}
	if id, got := grants(t, ts, tr.AccessToken); id.Name != "bob" || !slices.Equal(got, []string{"repository:team/lib:pull"}) {
		t.Errorf("refreshed token: %s %v", id.Name, got)
	}
	// An access token is no refresh token.
	if resp, _ := postToken(t, ts, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.AccessToken}}); resp.StatusCode != 400 {
		t.Errorf("access token as refresh token: %d", resp.StatusCode)
	}

	// A new password revokes refresh tokens.
	ts.Users, _ = ParseHtpasswd(htpasswdFor(t, "bob")) // same password, new salt
	resp, _ = postToken(t, ts, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(body), `"invalid_grant"`) {
		t.Errorf("refresh after password change: %d %s", resp.StatusCode, body)
	}

	for _, form := range []url.Values{
		{"grant_type": {"password"}, "username": {"bob"}, "password": {"nope"}},
		{"grant_type": {"client_credentials"}},
		{"grant_type": {"refresh_token"}, "refresh_token": {"garbage"}},
	} {
		if resp, _ := postToken(t, ts, form); resp.StatusCode != 400 {
			t.Errorf("%v: status %d", form, resp.StatusCode)
		}
	}
}

func TestTokenServerOfflineTokenOnGet(t *testing.T) {
	ts := newTestTokenServer(t)
	_, tr := getToken(t, ts, "bob", password("bob"), "offline_token=true&client_id=docker")
	if tr.RefreshToken == "" {
		t.Error("no refresh token for offline_token=true")
	}
	_, tr = getToken(t, ts, "", "", "offline_token=true")
	if tr.RefreshToken != "" {
		t.Error("anonymous got a refresh token")
	}
}

func TestIssuedTokenExpires(t *testing.T) {
	ts := newTestTokenServer(t)
	ts.now = func() time.Time { return time.Now().Add(-time.Hour) }
	_, tr := getToken(t, ts, "bob", password("bob"), "scope=repository:team/app:pull")
	_, err := ts.Authorizer("").Verify(t.Context(), tr.Token)
	if !errors.Is(err, ErrTokenExpired) {
		t.Errorf("hour-old token: %v", err)
	}
	other := newTestTokenServer(t) // same settings, its own generated key
	ts.now = nil
	_, tr = getToken(t, ts, "bob", password("bob"), "")
	if _, err := other.Authorizer("").Verify(t.Context(), tr.Token); !errors.Is(err, ErrTokenSignature) {
		t.Errorf("token of another key: %v", err)
	}
}

func TestTokenServerJWKS(t *testing.T) {
	ts := newTestTokenServer(t)
	srv := httptest.NewServer(ts.JWKS())
	defer srv.Close()
	_, tr := getToken(t, ts, "bob", password("bob"), "scope=repository:team/app:pull")
	// A registry elsewhere, trusting this token server through its JWKS.
	b := &Bearer{Realm: testRealm, Service: testService, Issuer: testIssuer, Keys: &JWKS{URL: srv.URL}}
	if _, err := b.Authorize(bearerRequest(tr.Token), []Access{Repository("team/app", ActionPull)}); err != nil {
		t.Error(err)
	}
}
