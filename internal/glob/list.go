package glob

import (
	"slices"
	"strings"
)

// List is patterns a repository matches by matching any of them, as a
// command's repeated --repository flag gives them.
type List []Glob

// CompileList compiles each pattern; the first that does not compile is
// the error.
func CompileList(patterns []string) (List, error) {
	l := make(List, 0, len(patterns))
	for _, p := range patterns {
		g, err := Compile(p)
		if err != nil {
			return nil, err
		}
		l = append(l, g)
	}
	return l, nil
}

// Selects reports whether the repository name matches one of l's
// patterns, or l has none: no patterns select every repository.
func (l List) Selects(name string) bool {
	if len(l) == 0 {
		return true
	}
	components := strings.Split(name, "/")
	return slices.ContainsFunc(l, func(g Glob) bool { return g.Match(components) })
}
