package registry

import (
	"context"
	"path"
	"strings"

	"github.com/lading-registry/lading/storage/driver"
)

// The walks of the commands that read a whole store (fsck, du): they go on
// past damage, so that one run sees all that can be read. damaged is told
// of each folder or object that cannot be read (never of a failure of the
// storage itself, which ends the walk: see storageFailed); its error, and
// fn's, end the walk.

// walkPast is the driver's Walk of dir after from, going on past what it
// cannot read: a folder is passed to damaged, and the walk resumes after
// it.
func walkPast(ctx context.Context, drv driver.Driver, dir, from string, fn driver.WalkFunc, damaged func(p string, err error) error) error {
	last := from
	var fnErr error
	err := drv.Walk(ctx, dir, from, func(fi driver.FileInfo) error {
		last, fnErr = fi.Path, fn(fi)
		return fnErr
	})
	switch {
	case fnErr != nil:
		return fnErr
	case err == nil || driver.IsNotFound(err):
		return nil
	case storageFailed(ctx, err):
		return err
	}
	// Something below dir could not be read, after last: look for it a
	// level down.
	children, err := drv.List(ctx, dir)
	if driver.IsNotFound(err) {
		return nil
	} else if err != nil {
		return pastDamage(ctx, dir, err, damaged)
	}
	for _, c := range children {
		if last > c+"/" && !strings.HasPrefix(last, c+"/") {
			continue // walked whole
		}
		fi, err := driver.StatObject(ctx, drv, c)
		switch {
		case err == nil && c > last:
			err = fn(fi)
		case driver.IsNotFound(err): // a folder
			err = walkPast(ctx, drv, c, last, fn, damaged)
		case err != nil:
			err = pastDamage(ctx, c, err, damaged)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// eachRepositoryPast is eachRepositoryUnder dir, going on past a folder it
// cannot list; visited holds the repositories seen, each called once.
func (r *Registry) eachRepositoryPast(ctx context.Context, dir string, visited map[string]bool, fn func(name string) error, damaged func(p string, err error) error) error {
	var fnErr error
	err := r.eachRepositoryUnder(ctx, dir, func(name string) error {
		if visited[name] {
			return nil
		}
		visited[name] = true
		fnErr = fn(name)
		return fnErr
	})
	if fnErr != nil || err == nil || storageFailed(ctx, err) {
		return err
	}
	children, err := r.driver.List(ctx, dir)
	if driver.IsNotFound(err) {
		return nil
	} else if err != nil {
		return pastDamage(ctx, dir, err, damaged)
	}
	for _, c := range children {
		if !strings.HasPrefix(path.Base(c), "_") {
			if err := r.eachRepositoryPast(ctx, c, visited, fn, damaged); err != nil {
				return err
			}
		}
	}
	return nil
}

// pastDamage hands p's err to damaged, unless the storage itself failed.
func pastDamage(ctx context.Context, p string, err error, damaged func(p string, err error) error) error {
	if storageFailed(ctx, err) {
		return err
	}
	return damaged(p, err)
}
