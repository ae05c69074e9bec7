package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"

	"github.com/lading-registry/lading/internal/bytesize"
	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/storage/driver"
)

// QuotaRule caps the bytes the repositories a pattern matches link, as
// Usage counts them (LinkedBytes): every blob a repository links, its
// manifests' own bytes among them.
type QuotaRule struct {
	// Pattern is the rule as configured: it names the rule in refusals
	// and to Options.QuotaUsed and QuotaRefused.
	Pattern      string
	Repositories glob.Glob
	// Limit is the most bytes, more than 0.
	Limit int64
	// Each gives every repository the rule governs the limit to itself;
	// without it the limit caps their total.
	Each bool
}

// quotaFresh is how old a count of usage may be when a push is checked
// against it; an older one is counted again first. What this process
// linked since a count began is added to it, so the bound matters only
// for what other processes push and delete (and what the collector
// frees).
var quotaFresh = 30 * time.Second // a variable for the tests

// quotaCountTimeout bounds one count, which the requests waiting on it
// share, so that it outlives the one that began it.
const quotaCountTimeout = 2 * time.Minute

// quotaSizes bounds the blob sizes a process remembers for its counts
// (120 bytes each, 15 MiB when full): a size never changes under its
// digest, so a count of blobs met before lists links and stats none.
const quotaSizes = 1 << 17

// quotas checks pushes against the rules. Usage is kept per rule (per
// repository under a rule with Each) in this process, counted again from
// the store when older than quotaFresh.
type quotas struct {
	reg      *Registry
	rules    []QuotaRule
	patterns []glob.Glob
	used     func(rule string, bytes int64)
	refused  func(rule string)
	flight   singleflight.Group
	sizes    *otter.Cache[digestKey, int64]

	mu     sync.Mutex
	counts map[quotaKey]*quotaCount
	// holding are the commits of one blob into one repository under way:
	// commits of the same blob at once (parallel CI jobs pushing a shared
	// base layer) hold its bytes once, and count them once linked.
	holding map[quotaHoldKey]*sharedHold
	// linkedAt is when this process last linked each blob into each
	// repository (and counted it): a commit of one linked since its
	// count began adds nothing again, though the link it checked first
	// was not there yet.
	linkedAt map[quotaHoldKey]time.Time
}

// maxLinkedAt bounds linkedAt; past it the entries older than two
// quotaFresh go (a blob then linked again may count twice, until the next
// count: the usage errs high).
const maxLinkedAt = 1 << 16

// quotaHoldKey is a blob being committed into a repository.
type quotaHoldKey struct {
	repo string
	d    digestKey
}

// sharedHold is the bytes the commits of one blob into one repository
// hold together. Guarded by quotas.mu.
type sharedHold struct {
	c      *quotaCount
	size   int64
	refs   int
	linked bool // a commit linked it: its bytes moved from reserved to linked
}

// maxQuotaCounts bounds the counts kept; past it those stale and unheld
// are dropped (an each rule over short-lived repositories).
var maxQuotaCounts = 1 << 14 // a variable for the tests

// quotaKey names a count: a rule's total (repo empty), or one repository
// under a rule with Each.
type quotaKey struct {
	rule int
	repo string
}

// quotaCount is one count of usage and what this process did since.
// Guarded by quotas.mu.
type quotaCount struct {
	counted int64     // what the last count found
	began   time.Time // when it began; zero before the first
	// linked is what this process linked since then. A link made while a
	// count lists may be found by it and added again: the usage errs
	// high, until the next count.
	linked int64
	// reserved is what commits checked and not yet ended may link, so
	// that those of one process at once cannot pass the limit together.
	reserved int64
	counting bool
	// linkedDuring is what this process linked since the running count
	// began: linked, once it ends.
	linkedDuring int64
}

func (c *quotaCount) usage() int64 { return c.counted + c.linked + c.reserved }

func newQuotas(r *Registry, opts Options) *quotas {
	if len(opts.Quotas) == 0 {
		return nil
	}
	q := &quotas{reg: r, rules: opts.Quotas, used: opts.QuotaUsed, refused: opts.QuotaRefused,
		sizes:  otter.Must(&otter.Options[digestKey, int64]{MaximumSize: quotaSizes}),
		counts: map[quotaKey]*quotaCount{}, holding: map[quotaHoldKey]*sharedHold{}, linkedAt: map[quotaHoldKey]time.Time{}}
	for _, rule := range q.rules {
		q.patterns = append(q.patterns, rule.Repositories)
	}
	return q
}

// govern returns the count that governs repo: that of the first rule
// matching it; false when none does.
func (q *quotas) govern(repo string) (quotaKey, bool) {
	name := strings.Split(repo, "/")
	i := slices.IndexFunc(q.patterns, func(g glob.Glob) bool { return g.Match(name) })
	if i < 0 {
		return quotaKey{}, false
	}
	if q.rules[i].Each {
		return quotaKey{rule: i, repo: repo}, true
	}
	return quotaKey{rule: i}, true
}

// mayStart refuses an upload into repo once its usage has reached the
// limit. d is the blob's digest when the request names it (a mount, a
// blob in one request): one repo links already is never refused.
func (q *quotas) mayStart(ctx context.Context, repo string, d digest.Digest) error {
	key, ok := q.govern(repo)
	if !ok {
		return nil
	}
	if d != "" {
		if linked, err := q.links(ctx, repo, d); linked || err != nil {
			return err
		}
	}
	c, err := q.fresh(ctx, key)
	if err != nil {
		return err
	}
	q.mu.Lock()
	used := c.usage()
	q.mu.Unlock()
	if limit := q.rules[key.rule].Limit; used >= limit {
		return q.refuse(key, used, -1)
	}
	return nil
}

// quotaHold is a commit's bytes, held against its rule's limit until it
// ends (done).
type quotaHold struct {
	q      *quotas
	key    quotaHoldKey
	shared *sharedHold
}

// admit checks that linking d, of size bytes, keeps repo's usage within
// its limit, and holds the bytes until the commit ends; starting, it
// also refuses once the limit is reached (a mount starts and commits in
// one request). A blob repo links already adds nothing: it is admitted,
// with no hold (nil, on which done does nothing).
func (q *quotas) admit(ctx context.Context, repo string, d digest.Digest, size int64, starting bool) (*quotaHold, error) {
	key, ok := q.govern(repo)
	if !ok {
		return nil, nil
	}
	if linked, err := q.links(ctx, repo, d); linked || err != nil {
		return nil, err
	}
	c, err := q.fresh(ctx, key)
	if err != nil {
		return nil, err
	}
	dk, _ := keyOf(d)
	hk := quotaHoldKey{repo: repo, d: dk}
	q.mu.Lock()
	defer q.mu.Unlock()
	if at, ok := q.linkedAt[hk]; ok && !c.began.IsZero() && !at.Before(c.began) {
		return nil, nil // linked by this process since the count began: counted
	}
	if sh := q.holding[hk]; sh != nil && sh.c == c {
		// The same blob into the same repository, under way: its bytes
		// are held already, and will be linked once.
		sh.refs++
		return &quotaHold{q: q, key: hk, shared: sh}, nil
	}
	limit := q.rules[key.rule].Limit
	if used := c.usage(); used+size > limit || starting && used >= limit {
		return nil, q.refuse(key, used, size)
	}
	c.reserved += size
	sh := &sharedHold{c: c, size: size, refs: 1}
	q.holding[hk] = sh
	return &quotaHold{q: q, key: hk, shared: sh}, nil
}

// done ends the hold: the bytes count as linked when the commit linked
// them, and are let go when it failed.
func (h *quotaHold) done(linked bool) {
	if h == nil {
		return
	}
	sh := h.shared
	h.q.mu.Lock()
	c := sh.c
	if linked && !sh.linked {
		sh.linked = true
		c.reserved -= sh.size
		c.linked += sh.size
		if c.counting {
			c.linkedDuring += sh.size
		}
		h.q.noteLinked(h.key)
	}
	sh.refs--
	if sh.refs == 0 {
		if !sh.linked {
			c.reserved -= sh.size
		}
		if h.q.holding[h.key] == sh {
			delete(h.q.holding, h.key)
		}
	}
	h.q.mu.Unlock()
	if linked {
		h.q.sizes.Set(h.key.d, sh.size)
	}
}

// links reports whether repo links d.
func (q *quotas) links(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	_, err := driver.StatObject(ctx, q.reg.driver, layerLinkPath(repo, d))
	if driver.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// stale reports whether c must be counted again before it is used.
func (q *quotas) stale(c *quotaCount) bool {
	return c.began.IsZero() || q.reg.now().Sub(c.began) > quotaFresh
}

// fresh returns the count of key. A stale one is counted again, by one
// count for the requests that find it stale meanwhile, in the background:
// the request goes on with the count before, plus what this process
// linked since, so that a count longer than quotaFresh (thousands of
// repositories on an object store) holds up no push. Only a key never
// counted waits for its first count, and fails with it. A failed count
// leaves the one before (logged); the next request tries again.
func (q *quotas) fresh(ctx context.Context, key quotaKey) (*quotaCount, error) {
	q.mu.Lock()
	c := q.counts[key]
	if c == nil {
		if len(q.counts) >= maxQuotaCounts {
			q.dropIdle()
		}
		c = &quotaCount{}
		q.counts[key] = c
	}
	stale, counted := q.stale(c), !c.began.IsZero()
	q.mu.Unlock()
	if !stale {
		return c, nil
	}
	done := q.flight.DoChan(strconv.Itoa(key.rule)+"/"+key.repo, func() (any, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), quotaCountTimeout)
		defer cancel()
		err := q.count(cctx, key, c)
		q.mu.Lock()
		before := !c.began.IsZero()
		q.mu.Unlock()
		if err != nil && before {
			q.reg.log.Warn("quota: counting usage failed; the count before stands", "rule", q.rules[key.rule].Pattern, "repository", key.repo, "err", err)
		}
		return nil, err
	})
	if counted {
		return c, nil
	}
	select {
	case res := <-done:
		return c, res.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// noteLinked records that this process linked and counted key's blob now.
// Called with q.mu held.
func (q *quotas) noteLinked(key quotaHoldKey) {
	now := q.reg.now()
	if len(q.linkedAt) >= maxLinkedAt {
		for k, at := range q.linkedAt {
			if now.Sub(at) > 2*quotaFresh {
				delete(q.linkedAt, k)
			}
		}
		if len(q.linkedAt) >= maxLinkedAt {
			clear(q.linkedAt)
		}
	}
	q.linkedAt[key] = now
}

// dropIdle forgets the counts that are stale and hold nothing, which the
// next request for them counts again. Called with q.mu held.
func (q *quotas) dropIdle() {
	held := map[*quotaCount]bool{}
	for _, sh := range q.holding {
		held[sh.c] = true
	}
	for k, c := range q.counts {
		if q.stale(c) && !c.counting && c.reserved == 0 && !held[c] {
			delete(q.counts, k)
		}
	}
}

// count counts the usage of key from the store into c.
func (q *quotas) count(ctx context.Context, key quotaKey, c *quotaCount) error {
	q.mu.Lock()
	if !q.stale(c) {
		q.mu.Unlock()
		return nil // counted by a flight that ended after the caller looked
	}
	began := q.reg.now()
	c.counting, c.linkedDuring = true, 0
	q.mu.Unlock()

	total, err := q.countKey(ctx, key)

	q.mu.Lock()
	c.counting = false
	if err == nil {
		c.counted, c.began, c.linked = total, began, c.linkedDuring
	}
	q.mu.Unlock()
	if err == nil && !q.rules[key.rule].Each && q.used != nil {
		q.used(q.rules[key.rule].Pattern, total)
	}
	return err
}

// countKey adds up the bytes the repositories key governs link: one
// repository's, or those of every repository of the catalog whose first
// matching rule is key's.
func (q *quotas) countKey(ctx context.Context, key quotaKey) (int64, error) {
	if key.repo != "" {
		return q.linkedBytes(ctx, key.repo)
	}
	matches, err := q.reg.MatchRepositories(ctx, q.patterns)
	if err != nil {
		return 0, err
	}
	matches = slices.DeleteFunc(matches, func(m RepositoryMatch) bool { return m.Pattern != key.rule })
	sums := make([]int64, len(matches))
	err = forEach(len(matches), func(i int) (err error) {
		sums[i], err = q.linkedBytes(ctx, matches[i].Name)
		return err
	})
	var total int64
	for _, n := range sums {
		total += n
	}
	return total, err
}

// linkedBytes is what Usage reports as repo's LinkedBytes: the size of
// every stored blob it links. A size met before comes from memory; the
// others are stated, at once.
func (q *quotas) linkedBytes(ctx context.Context, repo string) (int64, error) {
	var total int64
	var unknown []digest.Digest
	err := q.reg.driver.Walk(ctx, repoPath(repo)+"/_layers", "", func(fi driver.FileInfo) error {
		d, ok := digestAt(fi.Path, 1)
		k, kok := keyOf(d)
		if !ok || !kok || layerLinkPath(repo, d) != fi.Path {
			return nil // no link: Usage passes it over too
		}
		if size, known := q.sizes.GetIfPresent(k); known {
			total += size
		} else {
			unknown = append(unknown, d)
		}
		return nil
	})
	if err != nil && !driver.IsNotFound(err) {
		return 0, err
	}
	sizes := make([]int64, len(unknown))
	err = forEach(len(unknown), func(i int) error {
		fi, err := driver.StatObject(ctx, q.reg.driver, blobPath(unknown[i]))
		if driver.IsNotFound(err) {
			return nil // a link to a blob not stored, which Usage counts apart
		} else if err != nil {
			return err
		}
		sizes[i] = fi.Size
		k, _ := keyOf(unknown[i])
		q.sizes.Set(k, fi.Size)
		return nil
	})
	for _, n := range sizes {
		total += n
	}
	return total, err
}

// CountQuotas counts the usage of every rule capping a total now, as a
// push would when its count is stale: at a start, so that
// Options.QuotaUsed hears of each before the first push.
func (r *Registry) CountQuotas(ctx context.Context) error {
	q := r.quotas
	if q == nil {
		return nil
	}
	var errs []error
	for i, rule := range q.rules {
		if !rule.Each {
			if _, err := q.fresh(ctx, quotaKey{rule: i}); err != nil {
				errs = append(errs, fmt.Errorf("quota %q: %w", rule.Pattern, err))
			}
		}
	}
	return errors.Join(errs...)
}

// refuse is the DENIED answer to a push past key's limit, at used bytes:
// an upload's start (size -1), or a blob of size bytes.
func (q *quotas) refuse(key quotaKey, used, size int64) error {
	rule := q.rules[key.rule]
	if q.refused != nil {
		q.refused(rule.Pattern)
	}
	holds, them := "the repositories it takes hold", "them"
	of := "of their"
	if rule.Each {
		holds, them, of = key.repo+" holds", "it", "of its"
	}
	msg := fmt.Sprintf("quota %q is full: %s %s %s %s; pushes of new blobs are refused until tags are deleted and the garbage collection frees their space",
		rule.Pattern, holds, bytesize.Format(used), of, bytesize.Format(rule.Limit))
	if size >= 0 {
		msg = fmt.Sprintf("quota %q would be exceeded: %s %s %s %s, and this blob of %s would take %s past it",
			rule.Pattern, holds, bytesize.Format(used), of, bytesize.Format(rule.Limit), bytesize.Format(size), them)
	}
	detail := map[string]any{"rule": rule.Pattern, "usage": used, "limit": rule.Limit}
	if size >= 0 {
		detail["size"] = size
	}
	return &Error{Code: CodeDenied, Message: msg, Detail: detail}
}
