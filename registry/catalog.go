package registry

import (
	"context"
	"path"

	"github.com/lading-registry/lading/storage/driver"
)

// Catalog lists repository names in lexical order, at most n after last
// (n <= 0: all). more reports whether names remain after the page. The
// escaped catalog markers sort like the names they stand for, so a page is
// one listing of /catalog resumed at last. last must be a valid name
// (NAME_INVALID otherwise), since it becomes a storage path.
func (r *Registry) Catalog(ctx context.Context, last string, n int) (names []string, more bool, err error) {
	names = []string{}
	err = r.WalkCatalog(ctx, last, func(name string) bool {
		if n > 0 && len(names) == n {
			more = true
			return false
		}
		names = append(names, name)
		return true
	})
	if err != nil {
		return nil, false, err
	}
	return names, more, nil
}

// WalkCatalog calls fn with the repository names after last (all when
// empty), in lexical order, until fn returns false or the catalog ends: one
// listing, however many names fn passes over. last must be a valid name.
func (r *Registry) WalkCatalog(ctx context.Context, last string, fn func(name string) bool) error {
	from := ""
	if last != "" {
		if err := ValidateName(last); err != nil {
			return err
		}
		from = catalogPath(last)
	}
	err := r.driver.Walk(ctx, catalog, from, func(fi driver.FileInfo) error {
		// What Lading did not write there is no repository (see
		// tagOfPath).
		name, ok := unescapeName(path.Base(fi.Path))
		if ok && path.Dir(fi.Path) == catalog && ValidateName(name) == nil && !fn(name) {
			return driver.ErrStopWalk
		}
		return nil
	})
	if driver.IsNotFound(err) {
		return nil
	}
	return err
}

// exists reports whether the repository is in the catalog, which every write
// of content into it ensures.
func (repo *Repository) exists(ctx context.Context) (bool, error) {
	_, err := driver.StatObject(ctx, repo.reg.driver, catalogPath(repo.name))
	if driver.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func nameUnknown(name string) *Error {
	return newError(CodeNameUnknown, "repository %s is not known to the registry", name)
}
