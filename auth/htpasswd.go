package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Users checks passwords against an htpasswd file of bcrypt hashes
// (htpasswd -B), re-read when the file changes.
type Users struct {
	file     *watchedFile[*htpasswd]
	verified *verifiedCache
}

type htpasswd struct {
	hashes map[string][]byte
	// dummy is hashed with the file's cost, so an unknown user takes as
	// long to refuse as a wrong password.
	dummy []byte
}

// LoadHtpasswd reads an htpasswd file. Any hash other than bcrypt is a load
// error: MD5-crypt, SHA-1 and crypt(3) hashes are too weak to accept.
func LoadHtpasswd(path string, logger *slog.Logger) (*Users, error) {
	f, err := watchFile(path, parseHtpasswd, orDefault(logger))
	if err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", path, err)
	}
	return &Users{file: f, verified: newVerifiedCache()}, nil
}

// ParseHtpasswd builds Users from htpasswd content, for tests and callers
// that keep the file elsewhere.
func ParseHtpasswd(data []byte) (*Users, error) {
	h, err := parseHtpasswd(data)
	if err != nil {
		return nil, err
	}
	return &Users{file: staticFile(h), verified: newVerifiedCache()}, nil
}

func parseHtpasswd(data []byte) (*htpasswd, error) {
	h := &htpasswd{hashes: map[string][]byte{}}
	cost := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("line %d: want user:hash", n)
		}
		c, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("line %d: user %q: only bcrypt hashes are supported (create them with htpasswd -B): %w", n, user, err)
		}
		if _, dup := h.hashes[user]; dup {
			return nil, fmt.Errorf("line %d: user %q listed twice", n, user)
		}
		h.hashes[user] = []byte(hash)
		// An unknown user must cost what the dearest known one does, or
		// its quicker refusal tells it apart.
		cost = max(cost, c)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h.dummy = dummyHash(cost)
	return h, nil
}

var dummyHashes sync.Map // cost -> []byte

func dummyHash(cost int) []byte {
	if h, ok := dummyHashes.Load(cost); ok {
		return h.([]byte)
	}
	h, err := bcrypt.GenerateFromPassword([]byte("not a password anyone has"), cost)
	if err != nil {
		panic(err) // only for a cost bcrypt.Cost just accepted
	}
	dummyHashes.Store(cost, h)
	return h
}

// Verify reports whether password is user's. An unknown user costs a bcrypt
// comparison too, so response times do not tell which users exist.
func (u *Users) Verify(user, password string) bool {
	h := u.file.get()
	hash, known := h.hashes[user]
	if known && u.verified.has(user, password, hash) {
		return true
	}
	if !known {
		hash = h.dummy
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil && known
	if ok {
		u.verified.add(user, password, hash)
	}
	return ok
}

// fingerprint identifies user's current hash; refresh tokens carry it so
// that a new password revokes them.
func (u *Users) fingerprint(user string) (string, bool) {
	if u == nil {
		return "", false
	}
	hash, ok := u.file.get().hashes[user]
	if !ok {
		return "", false
	}
	return hashFingerprint(hash), true
}

// hasFingerprint reports whether user still exists with the hash fp was
// taken from.
func (u *Users) hasFingerprint(user, fp string) bool {
	if u == nil {
		return false
	}
	hash, ok := u.file.get().hashes[user]
	return ok && subtle.ConstantTimeCompare([]byte(hashFingerprint(hash)), []byte(fp)) == 1
}

func hashFingerprint(hash []byte) string {
	sum := sha256.Sum256(hash)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}
