package distimport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/registry"
)

// Options tune an import.
type Options struct {
	// DryRun reads and verifies what would be copied, and writes nothing.
	DryRun bool
	// Repositories, when set, limits the import to the repositories a
	// pattern matches, as the access policy's: "*" within one component,
	// "**" for any number of them.
	Repositories []string
	// Problem, when set, hears of each thing not imported, as it is met.
	Problem func(Problem)
	// Done, when set, hears of each repository as its import ends.
	Done func(RepositoryReport)
}

// Problem is something of the source that was not imported.
type Problem struct {
	Repository string
	// What names it: "blob sha256:...", "manifest sha256:...", "tag v1".
	What string
	Err  error
}

func (p Problem) String() string {
	return fmt.Sprintf("%s: %s: %v", p.Repository, p.What, p.Err)
}

// Counts are the outcomes for one kind of thing. Added is copied (blobs),
// stored (manifests) or set (tags); Linked is a blob the registry stored
// already, linked into the repository without a copy; Present is what the
// repository held already, untouched. A dry run counts what it would do.
type Counts struct {
	Added, Linked, Present, Failed int
}

func (c *Counts) add(o Counts) {
	c.Added += o.Added
	c.Linked += o.Linked
	c.Present += o.Present
	c.Failed += o.Failed
}

// RepositoryReport is what became of one repository's content.
type RepositoryReport struct {
	Name                   string
	Blobs, Manifests, Tags Counts
	// Bytes is the size of the blobs copied.
	Bytes int64
}

// Report sums up an import.
type Report struct {
	DryRun       bool
	Repositories int
	// Total sums every repository's counts (a blob shared by two
	// repositories counts in each).
	Total    RepositoryReport
	Problems int
}

// blobJobs is how many blobs are copied at once: on an object store each
// copy waits on round trips, and a few side by side keep the link busy.
const blobJobs = 4

// Import copies src's repositories into reg. Problems with the source (a
// blob missing or corrupt, a manifest Lading refuses, and what depends on
// them) are reported and skipped; the error is for what stops the run: a
// failing destination, an unreadable source, a cancelled ctx.
func Import(ctx context.Context, reg *registry.Registry, src *Source, opts Options) (Report, error) {
	selected, err := glob.CompileList(opts.Repositories)
	if err != nil {
		return Report{}, err
	}
	names, err := src.Repositories()
	if err != nil {
		return Report{}, fmt.Errorf("listing the source's repositories: %w", err)
	}
	im := &importer{reg: reg, src: src, opts: opts, selected: selected, rep: Report{DryRun: opts.DryRun}}
	for _, name := range names {
		if !im.selected.Selects(name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return im.rep, err
		}
		rep, err := im.repository(ctx, name)
		im.rep.Repositories++
		im.rep.Total.Blobs.add(rep.Blobs)
		im.rep.Total.Manifests.add(rep.Manifests)
		im.rep.Total.Tags.add(rep.Tags)
		im.rep.Total.Bytes += rep.Bytes
		if err != nil {
			return im.rep, fmt.Errorf("%s: %w", name, err)
		}
		if opts.Done != nil {
			opts.Done(rep)
		}
	}
	// A step may have ended as ctx was cancelled with nothing left to
	// write: an interrupted run never says it is complete.
	return im.rep, ctx.Err()
}

type importer struct {
	reg      *registry.Registry
	src      *Source
	opts     Options
	selected glob.List  // of opts.Repositories
	mu       sync.Mutex // guards rep and calls of Problem
	rep      Report
}

func (im *importer) problem(repo, what string, err error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.rep.Problems++
	if im.opts.Problem != nil {
		im.opts.Problem(Problem{Repository: repo, What: what, Err: err})
	}
}

// repoImport is the import of one repository. have records, by digest,
// whether the repository holds a blob or manifest of the source (or would,
// in a dry run): true once imported or found present, false once given up.
type repoImport struct {
	*importer
	repo *registry.Repository
	rep  RepositoryReport
	mu   sync.Mutex // guards rep and have while blobs copy
	have map[digest.Digest]bool
}

// repository imports one repository: blobs, then manifests, then tags, as
// each needs what comes before.
func (im *importer) repository(ctx context.Context, name string) (RepositoryReport, error) {
	ri := &repoImport{importer: im, rep: RepositoryReport{Name: name}, have: map[digest.Digest]bool{}}
	repo, err := im.reg.Repository(name)
	if err != nil {
		im.problem(name, "repository", err)
		return ri.rep, nil
	}
	ri.repo = repo
	for _, step := range []func(context.Context) error{ri.blobs, ri.manifests, ri.tags} {
		if err := step(ctx); err != nil {
			return ri.rep, err
		}
	}
	return ri.rep, nil
}

// fatal tells an error that ends the run from one that only the thing at
// hand has: the registry's coded errors are about what was asked of it.
func fatal(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if _, ok := registry.AsError(err); ok {
		return nil
	}
	return err
}

func (ri *repoImport) blobs(ctx context.Context) error {
	links, err := ri.src.blobLinks(ri.repo.Name())
	if err != nil {
		return fmt.Errorf("reading its blob links: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(blobJobs)
	for _, l := range links {
		if l.err != nil {
			ri.failed(&ri.rep.Blobs, l.digest, "blob", l.err)
			continue
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			return ri.blob(gctx, l.digest)
		})
	}
	return g.Wait()
}

// failed reports what was not imported and remembers it, so that what
// needs it is skipped too.
func (ri *repoImport) failed(c *Counts, d digest.Digest, kind string, err error) {
	ri.mu.Lock()
	c.Failed++
	ri.have[d] = false
	ri.mu.Unlock()
	ri.problem(ri.repo.Name(), kind+" "+d.String(), err)
}

// done counts what the repository now holds (or would).
func (ri *repoImport) done(field *int, d digest.Digest, bytes int64) {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	*field++
	ri.have[d] = true
	ri.rep.Bytes += bytes
}

// blob makes the repository hold a blob: present already, linked when the
// registry stores it for another repository, else copied and verified.
func (ri *repoImport) blob(ctx context.Context, d digest.Digest) error {
	blobs := ri.repo.Blobs()
	c := &ri.rep.Blobs
	if _, err := blobs.Stat(ctx, d); err == nil {
		ri.done(&c.Present, d, 0)
		return nil
	} else if !registry.IsUnknown(err) {
		return err
	}
	if ri.opts.DryRun {
		if _, err := ri.reg.StatBlob(ctx, d); err == nil {
			ri.done(&c.Linked, d, 0)
			return nil
		} else if !registry.IsUnknown(err) {
			return err
		}
		n, err := ri.verify(d)
		if err != nil {
			ri.failed(c, d, "blob", err)
			return nil
		}
		ri.done(&c.Added, d, n)
		return nil
	}
	if _, err := blobs.Mount(ctx, "", d); err == nil {
		ri.done(&c.Linked, d, 0)
		return nil
	} else if !registry.IsUnknown(err) {
		return err
	}
	f, err := ri.src.openBlob(d)
	if err != nil {
		ri.failed(c, d, "blob", err)
		return nil
	}
	defer f.Close()
	r := &sourceReader{ctx: ctx, r: f}
	desc, err := blobs.Put(ctx, d, r)
	switch {
	case r.err != nil && ctx.Err() == nil:
		ri.failed(c, d, "blob", fmt.Errorf("reading it from the source: %w", r.err))
	case errors.Is(err, registry.ErrDigestInvalid):
		ri.failed(c, d, "blob", errCorrupt)
	case err != nil:
		if ferr := fatal(ctx, err); ferr != nil {
			return ferr
		}
		ri.failed(c, d, "blob", err)
	default:
		ri.done(&c.Added, d, desc.Size)
	}
	return nil
}

// verify reads a blob of the source through and checks it against d,
// returning its size.
func (ri *repoImport) verify(d digest.Digest) (int64, error) {
	f, err := ri.src.openBlob(d)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	v := d.Verifier()
	n, err := io.Copy(v, f)
	if err != nil {
		return 0, fmt.Errorf("reading it from the source: %w", err)
	}
	if !v.Verified() {
		return 0, errCorrupt
	}
	return n, nil
}

// sourceReader keeps the source's read error, to tell it from the
// destination's, and ends the read once ctx is done: a write to a file
// system goes on whatever its context says, and an interrupt must not wait
// for a blob of gigabytes.
type sourceReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// pending is a manifest of the source that the repository does not hold.
type pending struct {
	digest  digest.Digest
	payload []byte
	needs   registry.ManifestNeeds
}

// manifests stores the repository's manifests that Lading does not hold,
// each after the manifests it lists, so that an index finds its children.
func (ri *repoImport) manifests(ctx context.Context) error {
	links, err := ri.src.manifestLinks(ri.repo.Name())
	if err != nil {
		return fmt.Errorf("reading its manifest links: %w", err)
	}
	c := &ri.rep.Manifests
	byDigest := map[digest.Digest]*pending{}
	var todo []*pending
	for _, l := range links {
		if err := ctx.Err(); err != nil {
			return err
		}
		if l.err != nil {
			ri.failed(c, l.digest, "manifest", l.err)
			continue
		}
		// What is stored has its references stored too: it is not read.
		if _, err := ri.repo.Manifests().Stat(ctx, l.digest.String()); err == nil {
			ri.done(&c.Present, l.digest, 0)
			continue
		} else if !registry.IsUnknown(err) {
			return err
		}
		p, err := ri.readManifest(l.digest)
		if err != nil {
			ri.failed(c, l.digest, "manifest", err)
			continue
		}
		byDigest[p.digest] = p
		todo = append(todo, p)
	}
	for _, p := range childrenFirst(todo, byDigest) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := ri.manifest(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// readManifest reads a manifest from the source and checks that Lading
// would take it.
func (ri *repoImport) readManifest(d digest.Digest) (*pending, error) {
	payload, err := ri.src.readManifest(d, ri.reg.MaxManifestSize())
	if err != nil {
		return nil, err
	}
	// The media type is the manifest's own: Distribution keeps no other.
	needs, err := registry.InspectManifest(payload, "")
	if err != nil {
		if isSchema1(payload) {
			return nil, errors.New("a Docker schema 1 manifest, which Lading does not accept (pull the image with docker and push it again to convert it)")
		}
		return nil, err
	}
	return &pending{digest: d, payload: payload, needs: needs}, nil
}

// isSchema1 tells a Docker schema 1 manifest, which the registry refuses
// as any other it does not know, so that the report can say what to do.
func isSchema1(payload []byte) bool {
	var doc struct {
		SchemaVersion int `json:"schemaVersion"`
	}
	return json.Unmarshal(payload, &doc) == nil && doc.SchemaVersion == 1
}

// childrenFirst orders manifests so that each comes after those of the
// list it names: a depth-first walk, output as each manifest's children
// are done. Content addressing rules out cycles; a crafted one would only
// end the walk early, and Put would refuse the index.
func childrenFirst(todo []*pending, byDigest map[digest.Digest]*pending) []*pending {
	var order []*pending
	seen := map[digest.Digest]bool{}
	var visit func(p *pending)
	visit = func(p *pending) {
		if seen[p.digest] {
			return
		}
		seen[p.digest] = true
		for _, c := range p.needs.Manifests {
			if q := byDigest[c]; q != nil {
				visit(q)
			}
		}
		order = append(order, p)
	}
	for _, p := range todo {
		visit(p)
	}
	return order
}

// manifest stores one manifest, unless what it needs is missing.
func (ri *repoImport) manifest(ctx context.Context, p *pending) error {
	c := &ri.rep.Manifests
	type need struct {
		digest   digest.Digest
		manifest bool
	}
	var needs []need
	for _, d := range p.needs.Blobs {
		needs = append(needs, need{d, false})
	}
	for _, d := range p.needs.Manifests {
		needs = append(needs, need{d, true})
	}
	for _, n := range needs {
		ok, err := ri.holds(ctx, n.digest, n.manifest)
		if err != nil {
			return err
		}
		if !ok {
			what := "blob"
			if n.manifest {
				what = "manifest"
			}
			ri.failed(c, p.digest, "manifest", fmt.Errorf("needs %s %s, which was not imported", what, n.digest))
			return nil
		}
	}
	if ri.opts.DryRun {
		ri.done(&c.Added, p.digest, 0)
		return nil
	}
	if _, err := ri.repo.Manifests().Put(ctx, p.digest.String(), p.needs.MediaType, p.payload); err != nil {
		if ferr := fatal(ctx, err); ferr != nil {
			return ferr
		}
		ri.failed(c, p.digest, "manifest", err)
		return nil
	}
	ri.done(&c.Added, p.digest, 0)
	return nil
}

// holds reports whether the repository holds d (or would, in a dry run):
// as this import left it, else as the registry has it, from an earlier
// push or import.
func (ri *repoImport) holds(ctx context.Context, d digest.Digest, asManifest bool) (bool, error) {
	ri.mu.Lock()
	ok, known := ri.have[d]
	ri.mu.Unlock()
	if known {
		return ok, nil
	}
	if asManifest {
		if _, err := ri.repo.Manifests().Stat(ctx, d.String()); err == nil {
			return true, nil
		} else if !registry.IsUnknown(err) {
			return false, err
		}
	}
	// An index may list a blob, which Put accepts as a child.
	if _, err := ri.repo.Blobs().Stat(ctx, d); err == nil {
		return true, nil
	} else if !registry.IsUnknown(err) {
		return false, err
	}
	return false, nil
}

// tags points each tag at its current manifest, by pushing the manifest
// again, as stored, with its tags: one push for all of a manifest's tags.
func (ri *repoImport) tags(ctx context.Context) error {
	links, err := ri.src.tags(ri.repo.Name())
	if err != nil {
		return fmt.Errorf("reading its tags: %w", err)
	}
	c := &ri.rep.Tags
	ms := ri.repo.Manifests()
	var targets []digest.Digest
	tagsOf := map[digest.Digest][]string{}
	for _, l := range links {
		if err := ctx.Err(); err != nil {
			return err
		}
		what := "tag " + l.tag
		if err := registry.ValidateTag(l.tag); err != nil {
			c.Failed++
			ri.problem(ri.repo.Name(), what, err)
			continue
		}
		if l.err != nil {
			c.Failed++
			ri.problem(ri.repo.Name(), what, l.err)
			continue
		}
		if desc, err := ms.Stat(ctx, l.tag); err == nil && desc.Digest == l.digest {
			c.Present++
			continue
		} else if err == nil && ri.reg.ImmutableTag(ri.repo.Name(), l.tag) {
			// Told apart before the push, which takes all of a manifest's
			// tags at once: one refused would hold the others back.
			c.Failed++
			ri.problem(ri.repo.Name(), what, fmt.Errorf("is immutable here (tags.immutable) and names %s, not %s", desc.Digest, l.digest))
			continue
		} else if err != nil && !registry.IsUnknown(err) {
			return err
		}
		ok, err := ri.holds(ctx, l.digest, true)
		if err != nil {
			return err
		}
		if !ok {
			c.Failed++
			ri.problem(ri.repo.Name(), what, fmt.Errorf("names manifest %s, which was not imported", l.digest))
			continue
		}
		if tagsOf[l.digest] == nil {
			targets = append(targets, l.digest)
		}
		tagsOf[l.digest] = append(tagsOf[l.digest], l.tag)
	}
	for _, d := range targets {
		tags := tagsOf[d]
		if ri.opts.DryRun {
			c.Added += len(tags)
			continue
		}
		m, err := ms.Get(ctx, d.String())
		if err != nil {
			// Held a moment ago: a collection or a delete took it since.
			if ferr := fatal(ctx, err); ferr != nil {
				return ferr
			}
			c.Failed += len(tags)
			ri.problem(ri.repo.Name(), "tags of manifest "+d.String(), err)
			continue
		}
		for chunk := range slices.Chunk(tags, registry.MaxTagsPerPush) {
			if _, err := ms.Put(ctx, d.String(), m.Descriptor.MediaType, m.Payload, chunk...); err != nil {
				if ferr := fatal(ctx, err); ferr != nil {
					return ferr
				}
				c.Failed += len(chunk)
				ri.problem(ri.repo.Name(), "tags of manifest "+d.String(), err)
				continue
			}
			c.Added += len(chunk)
		}
	}
	return nil
}
