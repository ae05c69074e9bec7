package registry

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/storage/driver"
)

// The fuzz targets below check the validators against grammars written out
// by hand another way and against the spec's regular expressions, and
// check that whatever a validator accepts makes storage paths the driver
// accepts.

// The spec's grammar for names and tags, as regular expressions.
var (
	specName = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	specTag  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// wantCodeOnly fails unless err is a *Error of code.
func lowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// grammarName is the spec's name grammar: components of lower-case
// alphanumerics joined by one '.', one or two '_', or any number of '-'.
func grammarName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLength {
		return false
	}
	for comp := range strings.SplitSeq(name, "/") {
		if comp == "" || !lowerAlnum(comp[0]) || !lowerAlnum(comp[len(comp)-1]) {
			return false
		}
		for i := 0; i < len(comp); {
			if lowerAlnum(comp[i]) {
				i++
				continue
			}
			j := i
			for j < len(comp) && !lowerAlnum(comp[j]) {
				j++
			}
			sep := comp[i:j]
			if sep != "." && sep != "_" && sep != "__" && strings.Trim(sep, "-") != "" {
				return false
			}
			i = j
		}
	}
	return true
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a", "library/ubuntu", strings.Repeat("a/", 127) + "a", strings.Repeat("b", 200) + "-" + strings.Repeat("c", 54), "a.b_c__d---e/f", "A", "a//b", "a/", "_a", "a/_uploads", "a/..", "a%2fb", "a\\b", "a\x00b", "ü"} {
		f.Add(s)
	}
	sha512 := digest.SHA512.FromString("x")
	longTag := strings.Repeat("t", MaxTagLength)
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName(name)
		if ok := grammarName(name); ok != (err == nil) {
			t.Fatalf("ValidateName(%q) = %v, grammar says valid=%v", name, err, ok)
		}
		if ok := len(name) <= MaxNameLength && specName.MatchString(name); ok != (err == nil) {
			t.Fatalf("ValidateName(%q) = %v, the spec's expression says valid=%v", name, err, ok)
		}
		if err != nil {
			wantErrCode(t, err, CodeNameInvalid)
			return
		}
		// The longest paths a valid name can reach must still be valid ones:
		// no component may escape or alias the layout's "_" directories.
		paths := []string{
			uploadStatePath(name, newUploadID()),
			referrerPath(name, sha512, sha512),
			tagPath(name, longTag),
			catalogPath(name),
		}
		for _, p := range paths {
			if err := driver.ValidatePath(p); err != nil {
				t.Fatalf("name %q makes invalid path %q: %v", name, p, err)
			}
		}
		for comp := range strings.SplitSeq(name, "/") {
			if strings.HasPrefix(comp, "_") {
				t.Fatalf("name %q has a component that could alias a layout directory", name)
			}
		}
		if back, ok := unescapeName(escapeName(name)); !ok || back != name {
			t.Fatalf("catalog escape of %q does not round-trip: %q", name, back)
		}
		if _, err := (&Registry{}).Repository(name); err != nil {
			t.Fatalf("Repository(%q): %v", name, err)
		}
	})
}

func tagByte(c byte, first bool) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
		return true
	case c == '.' || c == '-':
		return !first
	}
	return false
}

func grammarTag(tag string) bool {
	if len(tag) == 0 || len(tag) > MaxTagLength {
		return false
	}
	for i := 0; i < len(tag); i++ {
		if !tagByte(tag[i], i == 0) {
			return false
		}
	}
	return true
}

func FuzzValidateTag(f *testing.F) {
	for _, s := range []string{"latest", "v1.0.0-rc.1", "_x", ".x", "-x", "..", "a/b", "a:b", strings.Repeat("a", 129), "tag\n", "ümlaut"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		err := ValidateTag(tag)
		if ok := grammarTag(tag); ok != (err == nil) {
			t.Fatalf("ValidateTag(%q) = %v, grammar says valid=%v", tag, err, ok)
		}
		if ok := specTag.MatchString(tag); ok != (err == nil) {
			t.Fatalf("ValidateTag(%q) = %v, the spec's expression says valid=%v", tag, err, ok)
		}
		if err != nil {
			wantErrCode(t, err, CodeTagInvalid)
			return
		}
		if p := tagPath("a", tag); driver.ValidatePath(p) != nil {
			t.Fatalf("tag %q makes invalid path %q", tag, p)
		}
	})
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// grammarDigest: the registry addresses sha256 and sha512 digests in
// lower-case hex of the algorithm's length, and nothing else.
func grammarDigest(s string) bool {
	alg, hex, ok := strings.Cut(s, ":")
	switch {
	case !ok || !lowerHex(hex):
		return false
	case alg == "sha256":
		return len(hex) == 64
	case alg == "sha512":
		return len(hex) == 128
	}
	return false
}

func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{
		digest.FromString("x").String(), digest.SHA512.FromString("x").String(),
		"sha256:" + strings.Repeat("A", 64), "sha256:" + strings.Repeat("0", 63), "sha384:" + strings.Repeat("0", 96),
		"sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", "sha256:../../etc/passwd", ":", "sha256:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if ok := grammarDigest(s); ok != (err == nil) {
			t.Fatalf("ParseDigest(%q) = %v, grammar says valid=%v", s, err, ok)
		}
		if err != nil {
			wantErrCode(t, err, CodeDigestInvalid)
			if checkDigest(digest.Digest(s)) == nil {
				t.Fatalf("checkDigest accepts %q", s)
			}
			return
		}
		if d.String() != s {
			t.Fatalf("ParseDigest(%q) = %q", s, d)
		}
		for _, p := range []string{blobPath(d), layerLinkPath("a", d), manifestLinkPath("a", d)} {
			if err := driver.ValidatePath(p); err != nil {
				t.Fatalf("digest %q makes invalid path %q: %v", s, p, err)
			}
		}
	})
}

// validateDigest agrees with go-digest's Validate, whose regular
// expressions it skips, on the algorithms the registry supports, and
// refuses every other.
func FuzzValidateDigest(f *testing.F) {
	for _, s := range []string{
		digest.FromString("x").String(), digest.SHA512.FromString("x").String(), digest.SHA384.FromString("x").String(),
		"sha256:" + strings.Repeat("A", 64), "sha256:" + strings.Repeat("0", 63), "sha512:" + strings.Repeat("g", 128),
		"sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", ":", "sha256:", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := digest.Digest(s)
		got, want := validateDigest(d), d.Validate()
		if want == nil && d.Algorithm() != digest.SHA256 && d.Algorithm() != digest.SHA512 {
			want = errors.New("unsupported algorithm")
		}
		if (got == nil) != (want == nil) {
			t.Fatalf("validateDigest(%q) = %v, Validate = %v", s, got, want)
		}
	})
}

// The image spec's grammar for media types, as its regular expression.
var mediaTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)

// validMediaType agrees with the grammar's regular expression.
func FuzzValidMediaType(f *testing.F) {
	for _, s := range []string{
		"application/vnd.oci.image.manifest.v1+json", "a/b", "/b", "a/", "a//b", "a/b/c", "-a/b", "a/-b",
		"text/plain; charset=utf-8", "a/b\n", strings.Repeat("a", 127) + "/b", strings.Repeat("a", 128) + "/b",
		"a/" + strings.Repeat("b", 127), "a/" + strings.Repeat("b", 128), "A!#$&^_.+-/Z!#$&^_.+-", "é/b", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validMediaType(s), mediaTypeRE.MatchString(s); got != want {
			t.Fatalf("validMediaType(%q) = %v, the grammar says %v", s, got, want)
		}
	})
}
