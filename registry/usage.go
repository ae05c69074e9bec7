package registry

import (
	"cmp"
	"context"
	"math"
	"slices"
	"time"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/storage/driver"
)

// UsageOptions configure a count of the space the repositories use.
type UsageOptions struct {
	// Repositories, when set, limits the report to the repositories these
	// patterns match (as the access policy writes them: team/*, team/**).
	// Every repository's links are read all the same: a blob is exclusive
	// to one only when no other links it.
	Repositories []string
	// Problem, when set, is called for each entry that could not be read
	// or is not what its place holds; it is counted apart.
	Problem func(UsageProblem)
	// Progress, when set, is called now and then with the counts so far.
	Progress func(UsageProgress)
}

// UsageProblem is an entry the count passed over.
type UsageProblem struct {
	Repository string
	Path       string
	Detail     string
}

// UsageProgress counts what a count of usage has read so far.
type UsageProgress struct {
	Blobs        int
	Repositories int
	Links        int
}

// RepositoryUsage is the space one repository uses.
type RepositoryUsage struct {
	Name string `json:"name"`
	// LinkedBlobs are the blobs the repository links (its manifests'
	// bytes among them), LinkedBytes their size: what a pull of all it
	// holds moves.
	LinkedBlobs int   `json:"linkedBlobs"`
	LinkedBytes int64 `json:"linkedBytes"`
	// Exclusive are those of them no other repository links: about what
	// deleting the repository, then collecting, frees.
	ExclusiveBlobs int   `json:"exclusiveBlobs"`
	ExclusiveBytes int64 `json:"exclusiveBytes"`
	Manifests      int   `json:"manifests"`
	Tags           int   `json:"tags"`
}

// UsageReport is the space the store uses: each repository's (largest
// first), and the store's own, where a blob counts once however many
// repositories link it.
type UsageReport struct {
	Repositories []RepositoryUsage `json:"repositories"`
	StoredBlobs  int               `json:"storedBlobs"`
	StoredBytes  int64             `json:"storedBytes"`
	// Unlinked are the stored blobs no repository links: mostly what a
	// collection takes once they are older than its grace (one a kept
	// manifest still uses stays).
	UnlinkedBlobs int   `json:"unlinkedBlobs"`
	UnlinkedBytes int64 `json:"unlinkedBytes"`
	// Damaged counts the entries passed over (see UsageOptions.Problem).
	Damaged  int           `json:"damaged"`
	Duration time.Duration `json:"-"`
}

// blobUsage is what the count keeps of one stored blob: 16 bytes. With
// its key (33 bytes, padded to 40) in a map slot, the table's control
// bytes and the free slots it keeps as it grows, a blob costs about 95 to
// 130 bytes (BenchmarkUsageMemory): some 130 MB for a million blobs. A
// map, not the sorted runs on disk the collector's mark set spills to: the
// count adds to a blob's entry each time a link names it.
type blobUsage struct {
	size  int64
	links uint32 // repositories linking it
	owner uint32 // when links is 1: the index of the reported repository linking it, or noOwner
}

const noOwner = math.MaxUint32

// Usage counts the space each repository uses: the blobs it links and
// their size, those no other repository links, its manifests and tags;
// and the blobs stored, and those no repository links. It reads the
// store's listings and never a blob's bytes, so it may run while the
// registry serves: a blob pushed during the count is counted when a link
// names it. What cannot be read is reported (Problem) and passed over;
// only a failure of the storage itself ends the count, with an error.
func (r *Registry) Usage(ctx context.Context, opts UsageOptions) (UsageReport, error) {
	start := time.Now()
	selected, err := glob.CompileList(opts.Repositories)
	if err != nil {
		return UsageReport{}, err
	}
	u := &usage{reg: r, opts: opts, selected: selected, blobs: map[digestKey]blobUsage{}}
	err = walkPast(ctx, r.driver, blobsRoot, "", u.blob, u.damaged(""))
	if err == nil {
		err = r.eachRepositoryPast(ctx, reposRoot, map[string]bool{}, func(name string) error {
			return u.repository(ctx, name)
		}, u.damaged(""))
	}
	if err == nil {
		u.settle()
	}
	u.report.Duration = time.Since(start)
	return u.report, err
}

type usage struct {
	reg      *Registry
	opts     UsageOptions
	selected glob.List
	blobs    map[digestKey]blobUsage
	report   UsageReport
	prog     UsageProgress
	last     time.Time
}

func (u *usage) progress() {
	if u.opts.Progress != nil && time.Since(u.last) > 200*time.Millisecond {
		u.last = time.Now()
		u.opts.Progress(u.prog)
	}
}

func (u *usage) problem(repo, p, detail string) error {
	u.report.Damaged++
	if u.opts.Problem != nil {
		u.opts.Problem(UsageProblem{Repository: repo, Path: p, Detail: detail})
	}
	return nil
}

func (u *usage) damaged(repo string) func(p string, err error) error {
	return func(p string, err error) error { return u.problem(repo, p, err.Error()) }
}

func (u *usage) blob(fi driver.FileInfo) error {
	d, ok := digestAt(fi.Path, 2)
	k, kok := keyOf(d)
	if !ok || !kok || blobPath(d) != fi.Path {
		return u.problem("", fi.Path, "not a blob")
	}
	u.store(k, fi.Size)
	u.prog.Blobs++
	u.progress()
	return nil
}

// store adds a stored blob, once.
func (u *usage) store(k digestKey, size int64) blobUsage {
	if b, ok := u.blobs[k]; ok {
		return b
	}
	b := blobUsage{size: size, owner: noOwner}
	u.blobs[k] = b
	u.report.StoredBlobs++
	u.report.StoredBytes += size
	return b
}

// repository counts one repository's links, and when it is reported its
// manifests and tags.
func (u *usage) repository(ctx context.Context, name string) error {
	drv := u.reg.driver
	u.prog.Repositories++
	owner := uint32(noOwner)
	var ru *RepositoryUsage
	if u.selected.Selects(name) {
		owner = uint32(len(u.report.Repositories))
		u.report.Repositories = append(u.report.Repositories, RepositoryUsage{Name: name})
		ru = &u.report.Repositories[owner]
	}
	err := walkPast(ctx, drv, repoPath(name)+"/_layers", "", func(fi driver.FileInfo) error {
		u.prog.Links++
		u.progress()
		d, ok := digestAt(fi.Path, 1)
		k, kok := keyOf(d)
		if !ok || !kok || layerLinkPath(name, d) != fi.Path {
			return u.problem(name, fi.Path, "not a link")
		}
		b, stored := u.blobs[k]
		if !stored {
			// Pushed since the blobs were counted, or lost.
			blob, err := driver.StatObject(ctx, drv, blobPath(d))
			if driver.IsNotFound(err) {
				return u.problem(name, fi.Path, "links a blob not stored")
			} else if err != nil {
				return pastDamage(ctx, blobPath(d), err, u.damaged(name))
			}
			b = u.store(k, blob.Size)
		}
		b.links++
		if b.links == 1 {
			b.owner = owner
		}
		u.blobs[k] = b
		if ru != nil {
			ru.LinkedBlobs++
			ru.LinkedBytes += b.size
		}
		return nil
	}, u.damaged(name))
	if err != nil || ru == nil {
		return err
	}
	err = walkPast(ctx, drv, repoPath(name)+"/_manifests", "", func(fi driver.FileInfo) error {
		if d, ok := digestAt(fi.Path, 1); !ok || manifestLinkPath(name, d) != fi.Path {
			return u.problem(name, fi.Path, "not a manifest record")
		}
		ru.Manifests++
		return nil
	}, u.damaged(name))
	if err != nil {
		return err
	}
	isTag := tagOfPath(tagsPath(name))
	return walkPast(ctx, drv, tagsPath(name), "", func(fi driver.FileInfo) error {
		if _, ok := isTag(fi.Path); !ok {
			return u.problem(name, fi.Path, "not a tag")
		}
		ru.Tags++
		return nil
	}, u.damaged(name))
}

// settle tells the exclusive and the unlinked blobs apart once every
// link is counted, and sorts the repositories largest first.
func (u *usage) settle() {
	repos := u.report.Repositories
	for _, b := range u.blobs {
		switch {
		case b.links == 0:
			u.report.UnlinkedBlobs++
			u.report.UnlinkedBytes += b.size
		case b.links == 1 && b.owner != noOwner:
			repos[b.owner].ExclusiveBlobs++
			repos[b.owner].ExclusiveBytes += b.size
		}
	}
	slices.SortFunc(repos, func(a, b RepositoryUsage) int {
		return cmp.Or(cmp.Compare(b.LinkedBytes, a.LinkedBytes), cmp.Compare(a.Name, b.Name))
	})
}
