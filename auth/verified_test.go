package auth

import (
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Basic auth checks the password on every request; after the first, a
// user's requests must not pay bcrypt again. The comparisons are counted,
// not timed.
func TestVerifiedCacheSkipsBcrypt(t *testing.T) {
	defer func(f func([]byte, []byte) error) { compareHash = f }(compareHash)
	compares := 0
	compareHash = func(hash, password []byte) error {
		compares++
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	u, err := ParseHtpasswd([]byte("bob:" + string(hash) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !u.Verify("bob", "secret") {
		t.Fatal("right password refused")
	}
	if compares != 1 {
		t.Fatalf("the first login made %d bcrypt comparisons, want 1", compares)
	}
	for range 10 {
		if !u.Verify("bob", "secret") {
			t.Fatal("right password refused once remembered")
		}
	}
	if compares != 1 {
		t.Errorf("10 logins after the first made %d bcrypt comparisons, want none", compares-1)
	}
}

func TestVerifiedCacheRemembersOnlySuccess(t *testing.T) {
	u := testUsers(t)
	for range 2 {
		if u.Verify("bob", "wrong") || u.Verify("nobody", "wrong") {
			t.Fatal("wrong credentials accepted")
		}
	}
	if n := len(u.verified.entries); n != 0 {
		t.Fatalf("%d failures remembered", n)
	}
	if !u.Verify("bob", password("bob")) || u.Verify("bob", password("bob")+"x") || u.Verify("alice", password("bob")) {
		t.Fatal("a remembered login let in another password or user")
	}
}

func TestVerifiedCacheForgetsChangedPasswordAndTime(t *testing.T) {
	c := newVerifiedCache()
	now := time.Now()
	c.now = func() time.Time { return now }
	old, changed := []byte("$2a$04$old"), []byte("$2a$04$new")
	c.add("bob", "secret", old)
	if !c.has("bob", "secret", old) {
		t.Fatal("fresh entry not found")
	}
	if c.has("bob", "secret", changed) {
		t.Error("a login checked against the old hash counts after the password changed")
	}
	if c.has("bo", "bsecret", old) {
		t.Error("user and password run together")
	}
	now = now.Add(verifiedTTL)
	if c.has("bob", "secret", old) {
		t.Error("entry outlived verifiedTTL")
	}
}

func TestVerifiedCacheBounded(t *testing.T) {
	c := newVerifiedCache()
	for i := range maxVerified + 10 {
		c.add("user", string(rune(i)), []byte("h"))
	}
	if n := len(c.entries); n > maxVerified {
		t.Fatalf("%d entries, bound %d", n, maxVerified)
	}
}
