package auth

import (
	"fmt"
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

// An unknown user costs what some known user does, the same every time
// for one name and on every replica, and the costs of unknown names follow
// the users' own: a name's refusal time tells nothing whatever mix of
// costs the file holds (htpasswd -B makes cost 5, other tools 10).
func TestUnknownUserCostsLikeAKnownOne(t *testing.T) {
	cheap, _ := bcrypt.GenerateFromPassword([]byte("a"), bcrypt.MinCost)
	dear, _ := bcrypt.GenerateFromPassword([]byte("b"), bcrypt.MinCost+2)
	file := []byte("a:" + string(cheap) + "\nb:" + string(cheap) + "\nc:" + string(cheap) + "\nd:" + string(dear) + "\n")
	h, err := parseHtpasswd(file)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := parseHtpasswd(file) // another replica, or a reload
	dearPicks := 0
	for i := range 400 {
		name := fmt.Sprintf("nobody%d", i)
		c, err := bcrypt.Cost(h.dummyFor(name))
		if err != nil || (c != bcrypt.MinCost && c != bcrypt.MinCost+2) {
			t.Fatalf("%s: stand-in cost %d, %v; the users' are %d and %d", name, c, err, bcrypt.MinCost, bcrypt.MinCost+2)
		}
		if c2, _ := bcrypt.Cost(again.dummyFor(name)); c2 != c {
			t.Fatalf("%s: cost %d, then %d from the same file", name, c, c2)
		}
		if c == bcrypt.MinCost+2 {
			dearPicks++
		}
	}
	// A quarter of the users have the dear cost: about 100 of 400 names.
	if dearPicks < 60 || dearPicks > 140 {
		t.Errorf("%d of 400 unknown names got the dear cost; a quarter of the users have it", dearPicks)
	}
}
