package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestHtpasswdVerify(t *testing.T) {
	u := testUsers(t)
	if !u.Verify("bob", password("bob")) {
		t.Error("right password refused")
	}
	for _, tc := range [][2]string{{"bob", "wrong"}, {"bob", ""}, {"nobody", password("nobody")}, {"", ""}} {
		if u.Verify(tc[0], tc[1]) {
			t.Errorf("Verify(%q, %q) accepted", tc[0], tc[1])
		}
	}
}

func TestHtpasswdRejectsWeakHashes(t *testing.T) {
	for _, line := range []string{
		"bob:$apr1$ZkgK2xQ5$A3S5yDdL0QJcEaZ3rMClp/", // htpasswd -m
		"bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",     // htpasswd -s
		"bob:rlUDq9iKbsvBQ",                         // crypt(3)
		"bob:plain",
		"no-colon",
	} {
		_, err := ParseHtpasswd([]byte("# users\n" + line + "\n"))
		if err == nil {
			t.Errorf("%q accepted", line)
		} else if strings.Contains(line, ":") && !strings.Contains(err.Error(), "only bcrypt") {
			t.Errorf("%q: error %q does not say why", line, err)
		}
	}
}

func TestHtpasswdReloadsOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, htpasswdFor(t, "bob"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := LoadHtpasswd(path, quietLogger)
	if err != nil {
		t.Fatal(err)
	}
	if !u.Verify("bob", password("bob")) || u.Verify("carol", password("carol")) {
		t.Fatal("initial content wrong")
	}
	replace := func(content []byte) {
		t.Helper()
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		// Make the change visible without sleeping through mtime granularity.
		future := time.Now().Add(time.Duration(len(content)) * time.Second)
		os.Chtimes(path, future, future)
		u.file.mu.Lock()
		u.file.checked = time.Time{}
		u.file.mu.Unlock()
	}
	replace(htpasswdFor(t, "carol"))
	if u.Verify("bob", password("bob")) || !u.Verify("carol", password("carol")) {
		t.Error("change not picked up")
	}
	replace([]byte("carol:$apr1$broken\n"))
	if !u.Verify("carol", password("carol")) {
		t.Error("a broken edit must keep the last good file in force")
	}
	if _, err := LoadHtpasswd(path, quietLogger); err == nil {
		t.Error("loading a broken file must fail")
	}
}

// An unknown user must cost a bcrypt comparison like a wrong password, or
// response times would list the accounts. The bound is loose: without the
// dummy comparison the ratio is in the thousands.
func TestHtpasswdUnknownUserTakesBcryptTime(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	u, err := ParseHtpasswd([]byte("bob:" + string(hash) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	timed := func(user string) time.Duration {
		start := time.Now()
		for range 3 {
			u.Verify(user, "wrong")
		}
		return time.Since(start)
	}
	known, unknown := timed("bob"), timed("nobody")
	if unknown < known/4 {
		t.Errorf("unknown user %v, known user %v", unknown, known)
	}
}

// An unknown user costs what the dearest known one does, whatever the
// order of the file's lines.
func TestUnknownUserCostsTheDearestHash(t *testing.T) {
	cheap, _ := bcrypt.GenerateFromPassword([]byte("a"), bcrypt.MinCost)
	dear, _ := bcrypt.GenerateFromPassword([]byte("b"), bcrypt.MinCost+2)
	for _, file := range []string{"alice:" + string(dear) + "\nbob:" + string(cheap), "bob:" + string(cheap) + "\nalice:" + string(dear)} {
		h, err := parseHtpasswd([]byte(file))
		if err != nil {
			t.Fatal(err)
		}
		if c, _ := bcrypt.Cost(h.dummy); c != bcrypt.MinCost+2 {
			t.Errorf("the stand-in hash costs %d, the dearest user %d", c, bcrypt.MinCost+2)
		}
	}
}
