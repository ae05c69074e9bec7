package authtest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func ref(t *testing.T, addr, repoTag string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(addr + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func login(user string) authn.Authenticator {
	return &authn.Basic{Username: user, Password: users[user]}
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// wantRefused checks that err is the registry answering status with code in
// its OCI error body; "" (or a HEAD, which has no body) checks the status only.
func wantRefused(t *testing.T, err error, status int, code string) {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) {
		t.Fatalf("got %v, want the registry's %d %s", err, status, code)
	}
	var codes []string
	for _, d := range te.Errors {
		codes = append(codes, string(d.Code))
	}
	checkCode := code != "" && (te.Request == nil || te.Request.Method != http.MethodHead)
	if te.StatusCode != status || (checkCode && !slices.Contains(codes, code)) {
		t.Fatalf("got %d %v (%v), want %d %s", te.StatusCode, codes, err, status, code)
	}
}

func mustPush(t *testing.T, addr, repoTag string, img v1.Image, who authn.Authenticator) {
	t.Helper()
	if err := remote.Write(ref(t, addr, repoTag), img, remote.WithAuth(who)); err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
}

// ociBody decodes an OCI error body and returns its codes.
func ociBody(t *testing.T, resp *http.Response) []string {
	t.Helper()
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s %s: %d with a body that is no OCI error (%v): %q", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, err, raw)
	}
	var codes []string
	for _, e := range body.Errors {
		if e.Message == "" {
			t.Errorf("error %s without a message", e.Code)
		}
		codes = append(codes, e.Code)
	}
	return codes
}

// wantError checks an error response: its status, the OCI code of its body,
// and for a 401 that it carries a challenge.
func wantError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d", resp.Request.Method, resp.Request.URL, resp.StatusCode, status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if codes := ociBody(t, resp); !slices.Contains(codes, code) {
		t.Errorf("error codes %v, want %s", codes, code)
	}
	if status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
}

// do sends one request; authorization is the whole Authorization header
// value, or "" for none.
func do(t *testing.T, method, rawURL, authorization string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func basicHeader(user, password string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, password)
	return req.Header.Get("Authorization")
}

// fetchToken asks the built-in token server for scopes as user ("" for
// anonymous), the way docker and crane do, and returns the token.
func fetchToken(t *testing.T, baseURL, user string, scopes ...string) string {
	t.Helper()
	q := url.Values{"service": {"lading"}, "scope": scopes}
	authorization := ""
	if user != "" {
		authorization = basicHeader(user, users[user])
	}
	resp := do(t, http.MethodGet, baseURL+"/auth/token?"+q.Encode(), authorization)
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("token for %q: %d %s", user, resp.StatusCode, raw)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Token == "" || body.Token != body.AccessToken {
		t.Fatalf("token %q and access_token %q: want both, equal", body.Token, body.AccessToken)
	}
	return body.Token
}

// credentials is the Authorization header user presents in m for scopes.
func credentials(t *testing.T, m mode, baseURL, user string, scopes ...string) string {
	t.Helper()
	if m == basicMode {
		return basicHeader(user, users[user])
	}
	return "Bearer " + fetchToken(t, baseURL, user, scopes...)
}
