package glob

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// TagRules name tags by pattern, in some repositories or all of them: the
// tags that, once pushed, never move (tags.immutable).
type TagRules []tagRule

type tagRule struct {
	repo Glob   // nil: every repository
	tag  string // a path.Match pattern
}

// ParseTagRules reads rules separated by commas, each a tag pattern
// ("v*", every repository) or a repository pattern and a tag pattern
// joined by a colon ("prod/**:release-*"): neither a repository name nor
// a tag holds a colon. An empty spec names no tag.
func ParseTagRules(spec string) (TagRules, error) {
	var rules TagRules
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	for entry := range strings.SplitSeq(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("an empty rule in %q", spec)
		}
		var r tagRule
		repo, tag, scoped := strings.Cut(entry, ":")
		if scoped {
			g, err := Compile(repo)
			if err != nil {
				return nil, err
			}
			r.repo = g
		} else {
			tag = repo
		}
		if tag == "" || strings.ContainsAny(tag, ":/") {
			return nil, fmt.Errorf("rule %q: want TAG or REPOSITORY:TAG patterns", entry)
		}
		if err := CheckTag(tag); err != nil {
			return nil, err
		}
		r.tag = tag
		rules = append(rules, r)
	}
	return rules, nil
}

// Match reports whether a rule names tag in repository repo.
func (rs TagRules) Match(repo, tag string) bool {
	return rs.bind(repo, func(r tagRule) bool { return Component(r.tag, tag) })
}

// MayMatch reports whether a rule may name a tag of repository repo: one
// for every repository, or one whose repository pattern matches it. What
// immutable tags protect is looked for only there.
func (rs TagRules) MayMatch(repo string) bool { return rs.bind(repo, nil) }

// bind reports whether a rule that passes keep (nil: any) applies to
// repository repo; the name is split only for a rule scoped to some
// repositories.
func (rs TagRules) bind(repo string, keep func(tagRule) bool) bool {
	var components []string
	for _, r := range rs {
		if keep != nil && !keep(r) {
			continue
		}
		if r.repo == nil {
			return true
		}
		if components == nil {
			components = strings.Split(repo, "/")
		}
		if r.repo.Match(components) {
			return true
		}
	}
	return false
}

// CheckTag checks one tag pattern: path.Match's, over a tag, which holds
// neither a / nor a :.
func CheckTag(pattern string) error {
	switch _, err := path.Match(pattern, ""); {
	case pattern == "":
		return errors.New("an empty tag pattern")
	case err != nil:
		return fmt.Errorf("tag pattern %q: %w", pattern, err)
	case strings.ContainsAny(pattern, "/:,"):
		// No tag holds these: a pattern with one would match nothing.
		return fmt.Errorf("tag pattern %q: a tag holds no / : or ,", pattern)
	}
	if err := shellNegation(pattern); err != nil {
		return fmt.Errorf("tag pattern %q: %w", pattern, err)
	}
	return nil
}

// ParseTags reads tag patterns separated by commas ("pr-*, build-*"); an
// empty spec gives none.
func ParseTags(spec string) ([]string, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	var patterns []string
	for p := range strings.SplitSeq(spec, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("an empty pattern in %q", spec)
		}
		if err := CheckTag(p); err != nil {
			return nil, err
		}
		patterns = append(patterns, p)
	}
	return patterns, nil
}
