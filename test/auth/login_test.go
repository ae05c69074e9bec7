package authtest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
)

// TestLogin walks the flows `docker login` and `crane auth login` leave
// behind against the built-in token server: the challenge on /v2/, a token
// for Basic credentials, the retry with it; the OAuth2 refresh; and a
// client that takes its credentials from a docker config file.
func TestLogin(t *testing.T) {
	srv, _ := start(t, tokenMode)
	var seen []string

	t.Run("docker login", func(t *testing.T) {
		resp := do(t, http.MethodGet, srv.URL+"/v2/", "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET /v2/ without credentials: %d, want 401", resp.StatusCode)
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		if !strings.HasPrefix(challenge, "Bearer ") {
			t.Fatalf("challenge %q, want Bearer", challenge)
		}
		params := challengeParams(challenge)
		if params["realm"] != srv.URL+"/auth/token" || params["service"] != "lading" {
			t.Fatalf("challenge %q: want realm %s/auth/token and service lading", challenge, srv.URL)
		}
		q := url.Values{"service": {params["service"]}, "account": {"alice"}, "client_id": {"docker"}}
		resp = do(t, http.MethodGet, params["realm"]+"?"+q.Encode(), basicHeader("alice", users["alice"]))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("token for alice: %d", resp.StatusCode)
		}
		var body struct {
			Token     string `json:"token"`
			ExpiresIn int    `json:"expires_in"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Token == "" {
			t.Fatalf("token response: %v %+v", err, body)
		}
		if body.ExpiresIn < 60 {
			t.Errorf("expires_in %d, the token specification wants at least 60", body.ExpiresIn)
		}
		seen = append(seen, body.Token)
		if resp = do(t, http.MethodGet, srv.URL+"/v2/", "Bearer "+body.Token); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v2/ with the token: %d, want 200", resp.StatusCode)
		}

		// The account must be the one logging in.
		q.Set("account", "bob")
		resp = do(t, http.MethodGet, params["realm"]+"?"+q.Encode(), basicHeader("alice", users["alice"]))
		wantError(t, resp, http.StatusBadRequest, "UNSUPPORTED")
	})

	t.Run("refresh", func(t *testing.T) {
		refresh := refreshToken(t, srv.URL, "alice")
		seen = append(seen, refresh)
		resp := postForm(t, srv.URL+"/auth/token", url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "service": {"lading"},
			"client_id": {"test"}, "scope": {"repository:team/app:pull,push"},
		})
		var body struct {
			AccessToken string `json:"access_token"`
			Scope       string `json:"scope"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("refresh grant: %d %v", resp.StatusCode, err)
		}
		seen = append(seen, body.AccessToken)
		if body.Scope != "repository:team/app:pull,push" {
			t.Errorf("granted %q, want repository:team/app:pull,push", body.Scope)
		}
		if resp := do(t, http.MethodPost, srv.URL+"/v2/team/app/blobs/uploads/", "Bearer "+body.AccessToken); resp.StatusCode != http.StatusAccepted {
			t.Errorf("upload with the refreshed token: %d, want 202", resp.StatusCode)
		}
		resp = postForm(t, srv.URL+"/auth/token", url.Values{
			"grant_type": {"password"}, "username": {"alice"}, "password": {"wrong"}, "service": {"lading"}, "client_id": {"test"},
		})
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("password grant with a wrong password: %d, want 400 invalid_grant", resp.StatusCode)
		}
	})

	t.Run("docker config keychain", func(t *testing.T) {
		img := randomImage(t)
		dst := srv.Addr + "/team/app:keychain"
		withDockerConfig(t, srv.Addr, "bob", users["bob"])
		keychain := crane.WithAuthFromKeychain(authn.DefaultKeychain)
		if err := crane.Push(img, dst, keychain); err != nil {
			t.Fatalf("push with credentials from the docker config: %v", err)
		}
		got, err := crane.Digest(dst, keychain)
		if want, _ := img.Digest(); err != nil || got != want.String() {
			t.Fatalf("digest %q (%v), want %s", got, err, want)
		}

		withDockerConfig(t, srv.Addr, "bob", "stale-password")
		_, err = crane.Digest(dst, keychain)
		wantRefused(t, err, http.StatusUnauthorized, "UNAUTHORIZED")
	})

	t.Run("secrets stay out of the log", func(t *testing.T) {
		checkLogs(t, srv.Logs(), seen)
	})
}

// withDockerConfig points the docker config, which authn.DefaultKeychain
// reads, at a file holding user's credentials for registry, as `docker
// login` or `crane auth login` would have left it.
func withDockerConfig(t *testing.T, registry, user, password string) {
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := `{"auths":{"` + registry + `":{"auth":"` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("HOME", dir)
}

func postForm(t *testing.T, rawURL string, form url.Values) *http.Response {
	t.Helper()
	resp, err := http.PostForm(rawURL, form)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// refreshToken logs user in with the OAuth2 password grant, asking for a
// refresh token as `docker login` does against identity-token registries.
func refreshToken(t *testing.T, baseURL, user string) string {
	t.Helper()
	resp := postForm(t, baseURL+"/auth/token", url.Values{
		"grant_type": {"password"}, "username": {user}, "password": {users[user]},
		"access_type": {"offline"}, "service": {"lading"}, "client_id": {"test"},
	})
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.RefreshToken == "" {
		t.Fatalf("password grant for %s: %d %v, refresh token %q", user, resp.StatusCode, err, body.RefreshToken)
	}
	return body.RefreshToken
}
