package auth

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// The cast of every test: alice is an admin, bob a developer, carol owns
// carol/*, mallory has an account and no rights.
const testPolicy = `
admins:
  users: [alice]
groups:
  devs: [bob]
rules:
  - repositories: ["public/**"]
    anonymous: [pull]
  - repositories: ["team/**"]
    groups: [devs]
    actions: [pull, push]
  - repositories: ["team/*/scratch"]
    users: [bob]
    actions: [delete]
  - repositories: ["carol/*"]
    users: [carol]
    actions: ["*"]
`

func password(user string) string { return "pw-" + user }

func htpasswdFor(t testing.TB, users ...string) []byte {
	t.Helper()
	var out []byte
	for _, u := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(password(u)), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		out = fmt.Appendf(out, "%s:%s\n", u, h)
	}
	return out
}

func testUsers(t testing.TB) *Users {
	t.Helper()
	u, err := ParseHtpasswd(htpasswdFor(t, "alice", "bob", "carol", "mallory"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustPolicy(t testing.TB, yaml string) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var quietLogger = slog.New(slog.DiscardHandler)

// guarded serves what a registry route would: it asks the authorizer for
// what needOf says the request needs and answers 200 with the caller's name,
// or the refusal the way the server's error function will.
func guarded(a Authorizer, needOf func(*http.Request) []Access) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := a.Authorize(r, needOf(r))
		if err != nil {
			writeErrors(w, err)
			return
		}
		fmt.Fprint(w, id.Name)
	})
}

// do serves req with h and returns the response.
func do(t *testing.T, h http.Handler, req *http.Request) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	t.Cleanup(func() { io.Copy(io.Discard, resp.Body); resp.Body.Close() })
	return resp
}
