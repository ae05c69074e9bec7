package auth

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
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
	// costs are the users' bcrypt costs, sorted, one per user. An unknown
	// user is refused after a comparison at one of them, picked by a keyed
	// hash of the name (see dummyFor): a wrong password costs what it does
	// for the user at that cost, so timing cannot tell who exists even
	// when users' costs differ (htpasswd -B makes cost 5, other tools 10).
	costs []int
	// key keeps the pick secret from one who knows the names, and the
	// same on every replica reading the file: a hash of its content.
	key [sha256.Size]byte
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
	h := &htpasswd{hashes: map[string][]byte{}, key: sha256.Sum256(data)}
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
		h.costs = append(h.costs, c)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(h.costs) == 0 {
		h.costs = []int{bcrypt.DefaultCost}
	}
	slices.Sort(h.costs)
	for _, c := range slices.Compact(slices.Clone(h.costs)) {
		dummyHash(c) // made at load, not in a login's time
	}
	return h, nil
}

// dummyFor is the hash an unknown user's password is compared with: the
// same name always gets the same cost, as a known user does.
func (h *htpasswd) dummyFor(user string) []byte {
	m := hmac.New(sha256.New, h.key[:])
	m.Write([]byte(user))
	pick := binary.BigEndian.Uint64(m.Sum(nil))
	return dummyHash(h.costs[pick%uint64(len(h.costs))])
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

// compareHash is bcrypt's comparison, a variable so tests can count it.
var compareHash = bcrypt.CompareHashAndPassword

// Verify reports whether password is user's. An unknown user costs a bcrypt
// comparison too, so response times do not tell which users exist.
func (u *Users) Verify(user, password string) bool {
	h := u.file.get()
	hash, known := h.hashes[user]
	if known && u.verified.has(user, password, hash) {
		return true
	}
	if !known {
		hash = h.dummyFor(user)
	}
	ok := compareHash(hash, []byte(password)) == nil && known
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
