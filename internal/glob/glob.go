// Package glob matches repository names against patterns of path
// components, as the access policy and the immutable tags name them.
package glob

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Glob is a compiled repository pattern: "team/*", "**/stable", "lib-?".
type Glob []string

// Compile checks pattern and splits it into its components.
func Compile(pattern string) (Glob, error) {
	parts := strings.Split(pattern, "/")
	for _, c := range parts {
		if c == "" {
			return nil, fmt.Errorf("repository pattern %q: empty component", pattern)
		}
		if _, err := path.Match(c, ""); err != nil {
			return nil, fmt.Errorf("repository pattern %q: %w", pattern, err)
		}
		if err := shellNegation(c); err != nil {
			return nil, fmt.Errorf("repository pattern %q: %w", pattern, err)
		}
		if !strings.Contains(c, "[") && strings.ToLower(c) != c {
			return nil, fmt.Errorf("repository pattern %q can never match: repository names are lower-case", pattern)
		}
	}
	return parts, nil
}

// Match reports whether the name's components (name split at "/") match
// g's: "**" stands for any number of components (none too), any other
// element for one component as path.Match reads it. As in wildcard
// matching, a mismatch goes back only to the latest "**", which then takes
// one component more: the time is at most len(g)×len(name), where trying
// every "**" at every place grows as len(name) to the power of their
// number (the token server evaluates names anyone sends).
func (g Glob) Match(name []string) bool {
	i, n := 0, 0
	star, end := -1, 0 // the latest "**", and where its components end
	for n < len(name) {
		switch {
		case i < len(g) && g[i] == "**":
			star, end = i, n
			i++
		case i < len(g) && Component(g[i], name[n]):
			i, n = i+1, n+1
		case star >= 0:
			end++
			i, n = star+1, end
		default:
			return false
		}
	}
	for i < len(g) && g[i] == "**" {
		i++
	}
	return i == len(g)
}

// Component reports whether one component matches pattern, as path.Match
// reads it; a malformed pattern matches nothing.
func Component(pattern, component string) bool {
	ok, _ := path.Match(pattern, component)
	return ok
}

var errNegation = errors.New(`"[!" is not a negation here: write "[^...]"`)

// shellNegation refuses "[!", a shell's negated class, which path.Match
// reads as a class holding "!": "[!s]*" would match the names that begin
// with s, the opposite of what it says to a shell user, in a pattern that
// may grant access. No repository name or tag holds a "!", so the class
// can only be meant as a negation, which path.Match writes "[^s]".
func shellNegation(pattern string) error {
	if strings.Contains(pattern, "[!") {
		return errNegation
	}
	return nil
}
