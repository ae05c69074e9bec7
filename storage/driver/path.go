package driver

import "strings"

// MaxPathLength bounds a path; deep repository names stay well below it and
// every backend accepts it (S3 keys stop at 1024 bytes, with room for a prefix).
const MaxPathLength = 900

// ValidatePath checks path against the rules every backend relies on.
// "/" is valid and names the root.
func ValidatePath(path string) error {
	bad := func(reason string) error { return InvalidPathError{Driver: "validate", Path: path, Reason: reason} }
	if len(path) == 0 || path[0] != '/' {
		return bad("must start with /")
	}
	if len(path) > MaxPathLength {
		return bad("too long")
	}
	if path == "/" {
		return nil
	}
	if strings.HasSuffix(path, "/") {
		return bad("trailing /")
	}
	for seg := range strings.SplitSeq(path[1:], "/") {
		switch seg {
		case "":
			return bad("empty segment")
		case ".", "..":
			return bad("relative segment")
		}

		for i := 0; i < len(seg); i++ {
			if !validPathByte(seg[i]) {
				return bad("character outside [A-Za-z0-9._-]")
			}
		}
	}
	return nil
}

func validPathByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}
