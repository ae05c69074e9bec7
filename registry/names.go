package registry

import (
	"strings"

	"github.com/opencontainers/go-digest"
)

// Limits on names, from the OCI Distribution Specification's grammar.
const (
	MaxNameLength = 255
	MaxTagLength  = 128
)

// MaxTagsPerPush bounds the tags one manifest push points at (its
// reference and its `?tag=` parameters): each is a write, and the push
// answers only once all are durable.
const MaxTagsPerPush = 100

// ValidateName checks a repository name against the spec's grammar:
// components of lower-case alphanumerics joined by one '.', one or two
// '_', or any number of '-', separated by '/'. It runs on every request, so
// it scans the name once by hand rather than through a regular expression.
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLength {
		return newError(CodeNameInvalid, "repository name must be 1 to %d characters", MaxNameLength)
	}
	for comp := range strings.SplitSeq(name, "/") {
		if !validComponent(comp) {
			return newError(CodeNameInvalid, "invalid repository name %q", name)
		}
	}
	return nil
}

// storedNameLength is len(escapeName(name)), the catalog's one path
// segment for the name: '-', '.' and '/' take two bytes each.
func storedNameLength(name string) int {
	n := len(name)
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '-' || c == '.' || c == '/' {
			n++
		}
	}
	return n
}

func validComponent(c string) bool {
	i := 0
	for {
		start := i
		for i < len(c) && isLowerAlnum(c[i]) {
			i++
		}
		switch {
		case i == start:
			return false // empty, or a separator first or doubled
		case i == len(c):
			return true
		}
		switch c[i] {
		case '.':
			i++
		case '_':
			if i++; i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isTagChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
}

// ValidateTag checks a tag against the spec's grammar,
// [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func ValidateTag(tag string) error {
	ok := len(tag) > 0 && len(tag) <= MaxTagLength && tag[0] != '.' && tag[0] != '-'
	for i := 0; ok && i < len(tag); i++ {
		ok = isTagChar(tag[i])
	}
	if !ok {
		return newError(CodeTagInvalid, "invalid tag %q", tag)
	}
	return nil
}

// ParseDigest parses and validates a digest of an algorithm the registry
// supports (sha256, sha512). Anything else is DIGEST_INVALID.
func ParseDigest(s string) (digest.Digest, error) {
	if hexDigest(s, "sha256:", 64) || hexDigest(s, "sha512:", 128) {
		return digest.Digest(s), nil // the common case, without go-digest's regular expression
	}
	// Anything else is refused; go-digest only tells which message fits.
	d, err := digest.Parse(s)
	if err != nil {
		return "", newError(CodeDigestInvalid, "invalid digest %q", s)
	}
	return "", newError(CodeDigestInvalid, "unsupported digest algorithm %q", d.Algorithm())
}

// validateDigest checks that d is a digest the registry can address
// (ParseDigest): a manifest naming any other, such as sha384, which
// go-digest would accept, points at what the API can never serve or list.
func validateDigest(d digest.Digest) error {
	_, err := ParseDigest(string(d))
	return err
}

// hexDigest reports whether s is prefix followed by n lower-case hex digits.
func hexDigest(s, prefix string, n int) bool {
	if len(s) != len(prefix)+n || !strings.HasPrefix(s, prefix) {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
