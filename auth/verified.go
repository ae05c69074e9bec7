package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// verifiedCache remembers credentials bcrypt accepted a moment ago. Basic
// auth sends the password with every request, and bcrypt is slow on
// purpose (some 140 ms of CPU at cost 10 on a loaded 2-core machine): a
// 10-layer push took 3.9 s under Basic auth against 0.3 s with tokens.
// With the cache a user pays bcrypt once per verifiedTTL.
//
// It holds no password: entries are keyed by an HMAC under a key made at
// start and keep the hash they were checked against, so a new password or
// a removed user is checked afresh the moment the file is re-read.
// Failures are never remembered.
type verifiedCache struct {
	key []byte
	now func() time.Time

	mu      sync.Mutex
	entries map[[sha256.Size]byte]verifiedEntry
}

type verifiedEntry struct {
	hash []byte
	at   time.Time
}

const (
	verifiedTTL = time.Minute
	maxVerified = 10000
)

func newVerifiedCache() *verifiedCache {
	return &verifiedCache{key: []byte(rand.Text()), now: time.Now, entries: map[[sha256.Size]byte]verifiedEntry{}}
}

func (c *verifiedCache) mac(user, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.key)
	// The length keeps ("ab", "c") and ("a", "bc") apart.
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(user))))
	m.Write([]byte(user))
	m.Write([]byte(password))
	return [sha256.Size]byte(m.Sum(nil))
}

// has reports whether user logged in with password against hash within
// verifiedTTL.
func (c *verifiedCache) has(user, password string, hash []byte) bool {
	k := c.mac(user, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	return ok && bytes.Equal(e.hash, hash) && c.now().Sub(e.at) < verifiedTTL
}

func (c *verifiedCache) add(user, password string, hash []byte) {
	k := c.mac(user, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.entries) >= maxVerified {
		for k, e := range c.entries {
			if now.Sub(e.at) >= verifiedTTL {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxVerified {
			clear(c.entries)
		}
	}
	c.entries[k] = verifiedEntry{hash: hash, at: now}
}
