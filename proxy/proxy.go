// Package proxy makes a registry a pull-through cache of an upstream
// registry (Docker Hub, ghcr.io, quay.io, another Lading): a pull that
// misses locally is fetched from the upstream, verified against its digest
// and stored through the registry like a push, then served from storage.
//
// What it stores is ordinary content: every replica on the same storage
// serves it, and it survives restarts. Tags are the one thing that goes
// stale: a tag is served as stored while it was checked upstream within
// the TTL, and past it one HEAD upstream tells whether it moved. While the
// upstream cannot be asked, what is stored is served.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"

	"github.com/lading-registry/lading/logging"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/server"
)

// Options configure a Mirror.
type Options struct {
	// RemoteURL is the upstream, scheme and host: https://ghcr.io.
	RemoteURL string
	// Username and Password log in to the upstream; empty pulls
	// anonymously.
	Username, Password string
	// TagTTL is how long a tag checked upstream is served without
	// asking again; 0 asks on every pull.
	TagTTL time.Duration
	// EvictAfter, when set, has the mirror note the manifests it serves
	// (registry.ManifestStore.NotePull), for a collection with
	// registry.GCOptions.Unpulled to evict what is not pulled.
	EvictAfter time.Duration
	// Logger receives warnings; nil means slog.Default().
	Logger *slog.Logger
	// Observer counts upstream requests and cache lookups; nil counts
	// nothing.
	Observer Observer
	// Transport carries the upstream requests; nil means one with
	// timeouts on connecting and on the wait for a response.
	Transport http.RoundTripper
}

// Observer is told what a mirror does, for metrics.
type Observer interface {
	// Upstream counts one request to the upstream: op is manifest_head,
	// manifest_get, blob_head, blob_get or tags; outcome is ok,
	// not_found, throttled, unavailable or refused.
	Upstream(op, outcome string)
	// Fetched counts bytes received from the upstream (kind manifest or
	// blob) and stored.
	Fetched(kind string, n int64)
	// Lookup counts a pull of kind manifest or blob: hit (served from
	// storage, current), miss (fetched upstream) or stale (served from
	// storage because the upstream could not be asked).
	Lookup(kind, result string)
}

// Mirror fills a registry from its upstream. It implements server.Mirror.
type Mirror struct {
	reg    *registry.Registry
	up     *upstream
	log    *slog.Logger
	obs    Observer
	tags   tagClock
	lists  tagLists
	flight singleflight.Group
	blobs  blobFlights
	warned logging.EveryMinute
	// pulls are the manifests noted pulled lately; their notes wait in
	// pending for one of up to maxNoters writers.
	pulls   tagClock
	pending chan pullNote
	noteMu  sync.Mutex
	noters  int
	closed  bool
	notes   sync.WaitGroup
}

// pullNote is a pull of manifest d of repo, to note.
type pullNote struct {
	repo string
	d    digest.Digest
}

const (
	// maxNoters bounds the notes written at once.
	maxNoters = 4
	// maxPendingNotes bounds the notes waiting; past it a pull goes
	// unnoted (logged), and a later one notes it.
	maxPendingNotes = 4096
)

// noteEvery is how often a manifest's pulls are noted: often enough
// that a note's age errs by a small part of evictAfter.
func noteEvery(evictAfter time.Duration) time.Duration {
	return min(max(evictAfter/16, time.Minute), time.Hour)
}

var _ server.Mirror = (*Mirror)(nil)

// fillTimeout bounds a manifest's fill, which runs for every request
// waiting on it and so outlives the one that began it.
const fillTimeout = 2 * time.Minute

// New returns a mirror filling reg from opts.RemoteURL.
func New(reg *registry.Registry, opts Options) (*Mirror, error) {
	up, err := newUpstream(opts.RemoteURL, opts.Username, opts.Password, opts.Transport)
	if err != nil {
		return nil, err
	}
	m := &Mirror{reg: reg, up: up, log: opts.Logger, obs: opts.Observer, tags: tagClock{ttl: opts.TagTTL}, lists: tagLists{ttl: opts.TagTTL}}
	if opts.EvictAfter > 0 {
		m.pulls.ttl = noteEvery(opts.EvictAfter)
		m.pending = make(chan pullNote, maxPendingNotes)
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.obs == nil {
		m.obs = nopObserver{}
	}
	return m, nil
}

// Manifest implements server.Mirror. Requests for one reference at once
// share one fill: the first to come does it, beside the others' waits.
func (m *Mirror) Manifest(ctx context.Context, repo, reference string) error {
	done := m.flight.DoChan(repo+"@"+reference, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fillTimeout)
		defer cancel()
		return nil, m.manifest(fctx, repo, reference)
	})
	select {
	case res := <-done:
		return res.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Mirror) manifest(ctx context.Context, repoName, reference string) error {
	repo, err := m.reg.Repository(repoName)
	if err != nil {
		return err
	}
	ms := repo.Manifests()
	local, err := ms.Stat(ctx, reference)
	have := err == nil
	if err != nil && !unknown(err) {
		return err
	}
	if strings.Contains(reference, ":") {
		if have {
			m.obs.Lookup("manifest", "hit")
			return nil
		}
		m.obs.Lookup("manifest", "miss")
		return m.fetchManifest(ctx, ms, repoName, reference, reference)
	}
	key := repoName + ":" + reference
	if have && m.tags.fresh(key) {
		m.obs.Lookup("manifest", "hit")
		return nil
	}
	d, err := m.headManifest(ctx, repoName, reference)
	switch outcomeOf(err) {
	case outcomeOK:
		if have && d == local.Digest {
			m.tags.mark(key)
			m.obs.Lookup("manifest", "hit")
			return nil
		}
		from := reference
		if d != "" {
			from = d.String() // the tag may move again between the HEAD and the GET
		}
		err = m.fetchManifest(ctx, ms, repoName, from, reference)
		if err == nil {
			m.tags.mark(key)
			m.obs.Lookup("manifest", "miss")
			return nil
		}
		if !have {
			return err
		}
		// The tag moved upstream, and its new manifest could not be had
		// (a rate limit on GETs alone, as Docker Hub's, an outage, a
		// manifest refused here): the one held is served, as when the
		// HEAD fails.
	case outcomeNotFound:
		// The upstream is the truth of its tags: kept here, a tag deleted
		// there (a release withdrawn) would come back in its next outage.
		// The manifest stays, by digest.
		m.tags.forget(key)
		if have {
			if err := ms.Delete(ctx, reference); err != nil && !unknown(err) {
				return err
			}
			m.log.InfoContext(ctx, "tag removed from the mirror: the upstream no longer has it", "repository", repoName, "tag", reference)
		}
		return &registry.Error{Code: registry.CodeManifestUnknown, Message: "manifest " + reference + " unknown to the upstream of repository " + repoName}
	}
	if !have {
		return m.failed(err)
	}
	// Stale if error: an outage or a rate limit upstream must not take
	// the images down with it. Served so until the TTL runs out, as a
	// check that passed: an upstream that hangs is then waited for once
	// a TTL, not by every pull.
	m.tags.mark(key)
	m.obs.Lookup("manifest", "stale")
	m.warnStale(ctx, repoName, reference, err)
	return nil
}

// Pulled implements server.Mirror: with EvictAfter, it notes the pull of
// manifest d, at most once in noteEvery per manifest in this process, off
// the request's path.
func (m *Mirror) Pulled(repo string, d digest.Digest) {
	key := repo + "@" + d.String()
	if m.pulls.ttl <= 0 || !m.pulls.claim(key) {
		return
	}
	select {
	case m.pending <- pullNote{repo, d}:
	default:
		m.pulls.forget(key)
		if m.warned.Allow() {
			m.log.Warn("pulls not noted for the mirror's eviction (proxy.evictafter): too many waiting to be written; the storage is slow", "waiting", maxPendingNotes)
		}
		return
	}
	m.noteMu.Lock()
	defer m.noteMu.Unlock()
	if m.noters < maxNoters && !m.closed {
		m.noters++
		m.notes.Go(m.writeNotes)
	}
}

// writeNotes writes the pending notes until none are left, or the mirror
// is closed.
func (m *Mirror) writeNotes() {
	for {
		m.noteMu.Lock()
		// Checked under the lock Pulled takes after it queued a note: a
		// note queued as this writer leaves finds it gone and starts
		// another.
		if m.closed || len(m.pending) == 0 {
			m.noters--
			m.noteMu.Unlock()
			return
		}
		m.noteMu.Unlock()
		select {
		case n := <-m.pending:
			m.writeNote(n)
		default: // taken by another writer
		}
	}
}

func (m *Mirror) writeNote(n pullNote) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := m.reg.Repository(n.repo)
	if err == nil {
		err = r.Manifests().NotePull(ctx, n.d)
	}
	if err != nil {
		m.pulls.forget(n.repo + "@" + n.d.String()) // the next pull tries again
		if m.warned.Allow() {
			m.log.Warn("a pull could not be noted for the mirror's eviction (proxy.evictafter)", "repository", n.repo, "digest", n.d, "err", err)
		}
	}
}

// Close waits for the notes being written, and drops those still
// waiting: a manifest's next pull notes it, or the collection counts it
// as pulled then if it has no note at all.
func (m *Mirror) Close() {
	m.noteMu.Lock()
	m.closed = true
	m.noteMu.Unlock()
	m.notes.Wait()
}

// headManifest returns the digest of reference upstream; empty when the
// upstream did not say (the manifest must then be read).
func (m *Mirror) headManifest(ctx context.Context, repo, reference string) (digest.Digest, error) {
	resp, err := m.up.do(ctx, http.MethodHead, repo, "manifests/"+reference, manifestAccept)
	m.obs.Upstream("manifest_head", string(outcomeOf(err)))
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	d, err := registry.ParseDigest(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return "", nil
	}
	return d, nil
}

// fetchManifest reads the manifest named by from upstream, checks it
// against its digest, and stores it byte-exact under to.
func (m *Mirror) fetchManifest(ctx context.Context, ms *registry.ManifestStore, repo, from, to string) error {
	resp, err := m.up.do(ctx, http.MethodGet, repo, "manifests/"+from, manifestAccept)
	m.obs.Upstream("manifest_get", string(outcomeOf(err)))
	if outcomeOf(err) == outcomeNotFound {
		return &registry.Error{Code: registry.CodeManifestUnknown, Message: "manifest " + from + " unknown to the upstream of repository " + repo}
	} else if err != nil {
		return m.failed(err)
	}
	defer resp.Body.Close()
	limit := m.reg.MaxManifestSize()
	payload, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return m.failed(&upstreamError{op: "manifest body", err: err})
	}
	if int64(len(payload)) > limit {
		return &registry.Error{Code: registry.CodeUnavailable, Message: fmt.Sprintf("manifest %s of %s upstream is larger than this mirror's limit of %d bytes (http.maxmanifestsize)", from, repo, limit)}
	}
	want := resp.Header.Get("Docker-Content-Digest")
	if strings.Contains(from, ":") {
		want = from
	}
	if d, err := registry.ParseDigest(want); err == nil && d.Algorithm().FromBytes(payload) != d {
		return &registry.Error{Code: registry.CodeUnavailable, Message: "the upstream sent a manifest that does not match digest " + want}
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if !slices.Contains(manifestTypes, mediaType) {
		// No manifest type (application/json, text/plain: an upstream or
		// a proxy before it that does not say): the payload's own.
		mediaType = ""
	}
	if _, err := ms.Fill(ctx, to, mediaType, payload); err != nil {
		return err
	}
	m.obs.Fetched("manifest", int64(len(payload)))
	return nil
}

// StatBlob implements server.Mirror.
func (m *Mirror) StatBlob(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	resp, err := m.up.do(ctx, http.MethodHead, repo, "blobs/"+d.String(), "")
	m.obs.Upstream("blob_head", string(outcomeOf(err)))
	if err != nil {
		return 0, m.blobFailed(repo, d, err)
	}
	resp.Body.Close()
	if resp.ContentLength < 0 {
		return 0, &registry.Error{Code: registry.CodeUnavailable, Message: "the upstream gave no length for blob " + d.String()}
	}
	return resp.ContentLength, nil
}

// Tags implements server.Mirror.
func (m *Mirror) Tags(ctx context.Context, repo string) ([]string, bool, error) {
	if l, fresh := m.lists.get(repo); fresh {
		return l.tags, !l.tooLarge, nil // too large: the local list
	}
	tags, err := m.up.tags(ctx, repo)
	m.obs.Upstream("tags", string(outcomeOf(err)))
	if errors.Is(err, errTagListTooLarge) {
		m.lists.put(repo, tagList{tooLarge: true}) // not read again within the TTL
	}
	switch outcomeOf(err) {
	case outcomeOK:
		m.lists.put(repo, tagList{tags: tags})
		return tags, true, nil
	case outcomeNotFound:
		return nil, false, &registry.Error{Code: registry.CodeNameUnknown, Message: "repository " + repo + " unknown to the upstream"}
	}
	m.warnStale(ctx, repo, "tags/list", err)
	return nil, false, nil
}

// failed is the answer to a pull the upstream could not serve while
// nothing stored could.
func (m *Mirror) failed(err error) error {
	var ue *upstreamError
	status := 0
	if errors.As(err, &ue) {
		status = ue.status
	}
	switch outcomeOf(err) {
	case outcomeThrottled, outcomeHeld:
		e := &registry.Error{Code: registry.CodeTooManyRequests, Message: "the upstream is rate limiting this mirror; try again later"}
		if ue != nil && ue.retryAfter > 0 {
			return waitError{e, ue.retryAfter}
		}
		return e
	case outcomeRefused:
		return &registry.Error{Code: registry.CodeUnavailable, Message: fmt.Sprintf("the upstream refused this mirror (%d): see proxy.username and proxy.password", status)}
	}
	m.log.Warn("upstream request failed", "error", err)
	return &registry.Error{Code: registry.CodeUnavailable, Message: "the upstream cannot be reached and nothing is cached"}
}

// waitError is a refusal the client should try again only after a while:
// as long as the upstream asked the mirror to wait (its Retry-After).
type waitError struct {
	err   *registry.Error
	after time.Duration
}

func (e waitError) Error() string             { return e.err.Error() }
func (e waitError) Unwrap() error             { return e.err }
func (e waitError) RetryAfter() time.Duration { return e.after }

func (m *Mirror) blobFailed(repo string, d digest.Digest, err error) error {
	if outcomeOf(err) == outcomeNotFound {
		return &registry.Error{Code: registry.CodeBlobUnknown, Message: "blob " + d.String() + " unknown to the upstream of repository " + repo}
	}
	return m.failed(err)
}

// warnStale tells, at most once a minute, that stored content is served
// while the upstream cannot be asked.
func (m *Mirror) warnStale(ctx context.Context, repo, reference string, err error) {
	if m.warned.Allow() {
		m.log.WarnContext(ctx, "the upstream cannot be asked: serving what the mirror holds (told once a minute)", "repository", repo, "reference", reference, "error", err)
	}
}

func unknown(err error) bool {
	return errors.Is(err, registry.ErrManifestUnknown) || errors.Is(err, registry.ErrNameUnknown)
}

// tagClock remembers when each tag was last checked upstream, in this
// process: replicas each check on their own, at most once a TTL.
type tagClock struct {
	ttl time.Duration
	mu  sync.Mutex
	at  map[string]time.Time
}

// maxTagClock bounds the tags remembered; past it those not fresh are
// forgotten.
const maxTagClock = 1 << 16

func (c *tagClock) fresh(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.at[key]
	return ok && time.Since(at) < c.ttl
}

func (c *tagClock) mark(key string) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.markLocked(key)
}

// claim marks key unless it is fresh, and reports whether it did: of
// callers at once, one is told to do what the mark stands for.
func (c *tagClock) claim(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at, ok := c.at[key]; ok && time.Since(at) < c.ttl {
		return false
	}
	c.markLocked(key)
	return true
}

func (c *tagClock) markLocked(key string) {
	if c.at == nil {
		c.at = map[string]time.Time{}
	}
	if len(c.at) >= maxTagClock {
		for k, at := range c.at {
			if time.Since(at) >= c.ttl {
				delete(c.at, k)
			}
		}
		if len(c.at) >= maxTagClock {
			clear(c.at)
		}
	}
	c.at[key] = time.Now()
}

func (c *tagClock) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.at, key)
}

// tagLists keeps the upstream's tag lists for the TTL, so that a client
// paging through one costs one listing upstream, not one a page.
type tagLists struct {
	ttl   time.Duration
	mu    sync.Mutex
	lists map[string]tagList
	bytes int
}

type tagList struct {
	tags     []string
	tooLarge bool // the upstream's was over maxTagListBytes
	at       time.Time
}

// maxTagListsBytes bounds the lists kept; past it they are all dropped.
const maxTagListsBytes = 64 << 20

func (c *tagLists) get(repo string) (tagList, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.lists[repo]
	return l, ok && time.Since(l.at) < c.ttl
}

func (c *tagLists) put(repo string, l tagList) {
	if c.ttl <= 0 {
		return
	}
	l.at = time.Now()
	n := 0
	for _, t := range l.tags {
		n += len(t) + 16 // the string's header
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lists == nil || c.bytes+n > maxTagListsBytes {
		c.lists, c.bytes = map[string]tagList{}, 0
	}
	if old, ok := c.lists[repo]; ok {
		for _, t := range old.tags {
			c.bytes -= len(t) + 16
		}
	}
	c.lists[repo] = l
	c.bytes += n
}

type nopObserver struct{}

func (nopObserver) Upstream(string, string) {}
func (nopObserver) Fetched(string, int64)   {}
func (nopObserver) Lookup(string, string)   {}
