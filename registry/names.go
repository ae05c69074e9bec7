package registry

import (
	"regexp"

	"github.com/opencontainers/go-digest"
)

// Limits on names, from the OCI Distribution Specification's grammar.
const (
	MaxNameLength = 255
	MaxTagLength  = 128
)

var (
	nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// ValidateName checks a repository name against the spec's grammar.
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLength {
		return newError(CodeNameInvalid, "repository name must be 1 to %d characters", MaxNameLength)
	}
	if !nameRE.MatchString(name) {
		return newError(CodeNameInvalid, "invalid repository name %q", name)
	}
	return nil
}

// ValidateTag checks a tag against the spec's grammar.
func ValidateTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return newError(CodeTagInvalid, "invalid tag %q", tag)
	}
	return nil
}

// ParseDigest parses and validates a digest of an algorithm the registry
// supports (sha256, sha512). Anything else is DIGEST_INVALID.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", newError(CodeDigestInvalid, "invalid digest %q", s)
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return d, nil
	}
	return "", newError(CodeDigestInvalid, "unsupported digest algorithm %q", d.Algorithm())
}
