// Package registry is the core of Lading: repositories, blobs and their
// resumable uploads, manifests, tags and referrers, kept on a storage driver.
// It knows nothing of HTTP; errors are *Error values with OCI codes.
package registry

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/logging"
	"github.com/lading-registry/lading/storage/driver"
)

// Options tune a Registry. The zero value is usable.
type Options struct {
	// Locker serialises writers of one upload session, and the pushes and
	// digest deletes of one manifest. Nil means an in-process locker, right
	// for a single process on its own storage.
	Locker Locker
	// Cache, when set, keeps blob links so a HEAD is not a backend read.
	Cache Cache
	// CacheObserver, when set, is told of every cache hit and miss.
	CacheObserver func(hit bool)
	// CacheFailed, when set, is told of every cache read that failed (a
	// shared cache down), which storage then answered.
	CacheFailed func()
	// UploadObserver, when set, is told +1 when this process creates an
	// upload session and -1 when it commits or cancels one.
	UploadObserver func(delta int)
	// Logger receives the registry's own logs. Nil means slog.Default().
	Logger *slog.Logger
	// MaxManifestSize bounds a manifest's payload; 0 means 4 MiB.
	MaxManifestSize int64
	// ManifestCacheSize is the memory, in bytes, for manifest payloads and
	// records kept in this process (see manifestCache); 0 keeps none.
	ManifestCacheSize int64
	// SoleServer says this process alone serves the storage (a file system
	// root without Redis): what tags resolve to is then kept in memory
	// between this process's writes (see tagCache).
	SoleServer bool
	// ImmutableTags names the tags that never move once pushed.
	ImmutableTags glob.TagRules
	// Quotas cap the bytes repositories link; a repository is governed
	// by the first rule matching it (see quota.go).
	Quotas []QuotaRule
	// QuotaUsed, when set, is told what each count of a rule capping a
	// total found.
	QuotaUsed func(rule string, bytes int64)
	// QuotaRefused, when set, is told of each push a rule refused.
	QuotaRefused func(rule string)
	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time
}

// DefaultMaxManifestSize is the spec's customary bound on a manifest.
const DefaultMaxManifestSize = 4 << 20

// Registry is a set of repositories on one storage driver.
type Registry struct {
	driver driver.Driver
	locker Locker
	log    *slog.Logger
	// damagedReferrers gates the warning of a damaged referrer entry,
	// which every listing of its subject meets again.
	damagedReferrers logging.EveryMinute
	// failedInvalidations gates the warning of a cache that refused an
	// invalidation, which every push and delete meets while Redis is
	// down; invalidationsFailed counts them in between.
	failedInvalidations logging.EveryMinute
	invalidationsFailed atomic.Int64
	maxMan              int64
	immutable           glob.TagRules
	// releaseRefs holds the references of the manifests deletes met in
	// immutable releases (digest.Digest → []reference), which their
	// digests fix, so that a run of deletes (a cleanup job) reads each
	// once, not once a delete. The tags are read every time: one removed
	// by another process (fsck --repair, a prune without the rules) may be
	// pushed again elsewhere. It grows with the manifests deletes met: a
	// few hundred bytes each, more for an index of many platforms.
	releaseRefs sync.Map
	now         func() time.Time

	cache       Cache
	cacheObs    func(hit bool)
	cacheFailed func()
	manifests   *manifestCache
	tags        *tagCache // nil unless Options.SoleServer
	uploadObs   func(delta int)
	// deferring: the driver may leave a batch's writes undurable until its
	// Commit, so a crash can keep a manifest's record without its bytes.
	deferring bool
	// lastState is the latest read of /gc/state, for writes to share.
	lastState lastGCState
	// maxSegment is the longest path segment the driver holds; 0: no limit.
	maxSegment int
	// manifestQueue hands this process's manifest locks on in turn
	// (lockManifest).
	manifestQueue *keyQueue
	// lockWaited, set by tests, hears of each wait for a manifest's lock.
	lockWaited func(key string)
	// quotas is nil when no quota is configured.
	quotas *quotas
}

// New returns a Registry over d.
func New(d driver.Driver, opts Options) *Registry {
	r := &Registry{driver: d, locker: opts.Locker, log: opts.Logger, maxMan: opts.MaxManifestSize, immutable: opts.ImmutableTags, now: opts.Now, cache: opts.Cache, cacheObs: opts.CacheObserver, cacheFailed: opts.CacheFailed, uploadObs: opts.UploadObserver,
		manifests: newManifestCache(opts.ManifestCacheSize), deferring: driver.Defers(d), maxSegment: driver.MaxSegment(d),
		manifestQueue: newKeyQueue()}
	if opts.SoleServer {
		r.tags = newTagCache()
	}
	if r.locker == nil {
		r.locker = NewLocalLocker()
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.maxMan <= 0 {
		r.maxMan = DefaultMaxManifestSize
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.uploadObs == nil {
		r.uploadObs = func(int) {}
	}
	r.quotas = newQuotas(r, opts)
	return r
}

// Driver returns the storage driver under the registry.
func (r *Registry) Driver() driver.Driver { return r.driver }

// Repository returns a handle on the named repository, which need not exist
// yet. It fails only for a name outside the grammar.
func (r *Registry) Repository(name string) (*Repository, error) {
	repo, err := r.stored(name)
	if err != nil {
		return nil, err
	}
	// The catalog keeps a name as one path segment, which a file system
	// limits: a name it cannot hold is refused before anything is written,
	// where it failed after the push's other writes were visible.
	if n, limit := storedNameLength(name), r.maxSegment; limit > 0 && n > limit {
		return nil, newError(CodeNameInvalid, "repository name %q is %d bytes once stored ('-', '.' and '/' take two); this storage holds at most %d", name, n, limit)
	}
	return repo, nil
}

// stored opens a repository found in the store, which the collector and
// fsck must reach whatever the storage's limit on new names.
func (r *Registry) stored(name string) (*Repository, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	return &Repository{reg: r, name: name}, nil
}

// Repository is one named repository.
type Repository struct {
	reg  *Registry
	name string
}

// Name returns the repository's name.
func (repo *Repository) Name() string { return repo.name }

// Blobs returns the repository's blob store.
func (repo *Repository) Blobs() *BlobStore { return &BlobStore{repo: repo} }

// Manifests returns the repository's manifest store.
func (repo *Repository) Manifests() *ManifestStore { return &ManifestStore{repo: repo} }

// register records the repository in the catalog. It is called on every
// write that links content into a repository, so the common case (already
// listed) is a single stat rather than a durable write.
func (repo *Repository) register(ctx context.Context) error {
	if listed, err := repo.exists(ctx); listed || err != nil {
		return err
	}
	return repo.reg.driver.PutContent(ctx, catalogPath(repo.name), nil)
}
