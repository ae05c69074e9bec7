package authtest

import (
	"io"
	"maps"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestLiveEdits changes the htpasswd and policy files under a running
// lading: new users and rules take effect without a restart, and a removed
// user or a changed password is refused at once, even right after a
// successful login with the old one.
func TestLiveEdits(t *testing.T) {
	srv, files := start(t, basicMode)
	tags := srv.URL + "/v2/team/app/tags/list"
	status := func(user, password string) int {
		return do(t, http.MethodGet, tags, basicHeader(user, password)).StatusCode
	}
	// eventually waits out the server's recheck of the files (a second).
	eventually := func(what string, user, password string, want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := status(user, password)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d, want %d", what, got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Repository unknown yet: 404 means let in. alice and bob log in now,
	// so that the server remembers their passwords.
	for user, want := range map[string]int{"alice": http.StatusNotFound, "bob": http.StatusNotFound, "eve": http.StatusForbidden} {
		if got := status(user, users[user]); got != want {
			t.Fatalf("%s before the edits: %d, want %d", user, got, want)
		}
	}
	if got := status("frank", "frank-Pa55word"); got != http.StatusUnauthorized {
		t.Fatalf("frank before he exists: %d, want 401", got)
	}

	edited := maps.Clone(users)
	delete(edited, "alice")
	edited["bob"] = "bob-New-Pa55word"
	edited["frank"] = "frank-Pa55word"
	files.SetUsers(t, edited)
	files.SetPolicy(t, policy+`
  - repositories: ["team/**"]
    users: [eve, frank]
    actions: [pull]
`)
	eventually("frank once added", "frank", edited["frank"], http.StatusNotFound)
	eventually("eve once the policy lets her pull", "eve", users["eve"], http.StatusNotFound)
	for _, c := range []struct{ what, user, password string }{
		{"alice once removed", "alice", users["alice"]},
		{"bob's old password", "bob", users["bob"]},
	} {
		if got := status(c.user, c.password); got != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", c.what, got)
		}
	}
	if got := status("bob", edited["bob"]); got != http.StatusNotFound {
		t.Errorf("bob's new password: %d, want 404 (let in, no such repository)", got)
	}
}

// An edit that does not load leaves the previous content in force, which
// the log says once and lading_config_file_stale says until a good edit.
func TestStaleFileMetric(t *testing.T) {
	srv, files := start(t, basicMode)
	stale := func(key string) string {
		resp := do(t, http.MethodGet, srv.URL+"/metrics", "")
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		prefix := `lading_config_file_stale{key="` + key + `"} `
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				return strings.TrimSpace(v)
			}
		}
		return "(none)"
	}
	eventually := func(key, want string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			got := stale(key)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s stale: %s, want %s", key, got, want)
			}
		}
	}
	eventually("auth.htpasswd.path", "0")
	eventually("auth.policy", "0")
	writeFile(t, files.Htpasswd, "alice:$apr1$weak$hashhashhashhashhash\n") // MD5-crypt: refused
	eventually("auth.htpasswd.path", "1")
	if got := do(t, http.MethodGet, srv.URL+"/v2/team/app/tags/list", basicHeader("alice", users["alice"])).StatusCode; got != http.StatusNotFound {
		t.Errorf("alice with the previous file in force: %d, want 404 (let in)", got)
	}
	files.SetUsers(t, users)
	eventually("auth.htpasswd.path", "0")
	eventually("auth.policy", "0")
	// A file gone leaves its last content in force too.
	if err := os.Rename(files.Policy, files.Policy+".away"); err != nil {
		t.Fatal(err)
	}
	eventually("auth.policy", "1")
	if err := os.Rename(files.Policy+".away", files.Policy); err != nil {
		t.Fatal(err)
	}
	eventually("auth.policy", "0")
}
