package registry

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// tagCache keeps what tags resolved to, in a process that alone serves its
// storage (Options.SoleServer), so that a pull by tag, which reads a tag and
// stats the manifest's record, costs no system call while neither changes.
//
// Every write of a tag in this process forgets it once the write is done
// (and a push that may rewrite a record under other tags forgets them all),
// and a resolution read while any tag changed is not kept, so this
// process's readers see its writes at once. Changes made by other processes
// (lading gc and fsck beside the server; a tagged manifest is collected
// only on a mirror that evicts, whose reads fill again what went) are seen
// within tagTrust, after which a resolution is read again before it is
// used.
type tagCache struct {
	// mu orders fills against forgets: a fill keeps its entry only if no
	// tag changed since its read began, and a forget then marks the change.
	mu      sync.Mutex
	changes atomic.Uint64
	entries *otter.Cache[string, tagEntry]
	// lists are large repositories' tags in order, kept and trusted as
	// resolutions are, so that a page of them costs the page: on a file
	// system a listing reads the whole folder (55 ms for 100,000 tags),
	// and paging through such a repository cost time in the square of
	// its size. listing holds the repositories whose list is being read,
	// so concurrent pages read one list, not one each.
	lists   *otter.Cache[string, tagList]
	listing map[string]*listRead
}

// listRead is a read of a repository's whole list under way; changed
// says one of its tags was written meanwhile, and the list is not kept.
// Per repository: writes elsewhere, steady on a busy registry, leave it be.
type listRead struct{ changed bool }

type tagList struct {
	names   []string
	checked time.Time
}

// keptListMin is the fewest tags worth a kept list: a smaller folder is
// read in about the time a page is served.
const keptListMin = 1024

type tagEntry struct {
	rec     manifestRecord
	checked time.Time
}

const (
	// tagTrust is how long a resolution is used without a look at the
	// storage.
	tagTrust = time.Second
	// tagCacheBytes bounds the memory of the tags kept: 16 Ki tags of
	// about 0.5 KiB each, fewer of records whose subject is large.
	tagCacheBytes = 8 << 20
)

func newTagCache() *tagCache {
	return &tagCache{
		entries: newWeighed(tagCacheBytes, func(e tagEntry) int { return recordWeight + recordBytes(e.rec) }),
		lists: newWeighed(tagListBytes, func(l tagList) int {
			n := 24 * len(l.names)
			for _, t := range l.names {
				n += len(t)
			}
			return n
		}),
		listing: map[string]*listRead{},
	}
}

// tagListBytes bounds the memory of kept lists: 100,000 tags of 20
// characters take about 4.4 MB.
const tagListBytes = 32 << 20

// list returns repo's kept tags in order, if checked since now-tagTrust.
func (c *tagCache) list(repo string, now time.Time) ([]string, bool) {
	if c == nil {
		return nil, false
	}
	l, ok := c.lists.GetIfPresent(repo)
	if !ok || now.Sub(l.checked) >= tagTrust {
		return nil, false
	}
	return l.names, true
}

// beginList claims the reading of repo's whole list; false when another
// request is reading it. endList must follow.
func (c *tagCache) beginList(repo string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.listing[repo] != nil {
		return false
	}
	c.listing[repo] = &listRead{}
	return true
}

// endList keeps names, read since beginList, as repo's list unless one of
// its tags changed meanwhile or they are too few to be worth it (nil: the
// read failed), and releases the claim.
func (c *tagCache) endList(repo string, names []string, checked time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	read := c.listing[repo]
	delete(c.listing, repo)
	if len(names) >= keptListMin && read != nil && !read.changed {
		c.lists.Set(repo, tagList{names: names, checked: checked})
	}
}

// recordBytes is what a record holds beyond a plain descriptor: its
// subject's descriptor, whose annotations and data a pusher chooses (up to
// a manifest's size).
func recordBytes(rec manifestRecord) int {
	n := len(rec.ArtifactType)
	if s := rec.Subject; s != nil {
		n += len(s.MediaType) + len(s.Digest) + len(s.ArtifactType) + len(s.Data)
		for k, v := range s.Annotations {
			n += len(k) + len(v)
		}
		for _, u := range s.URLs {
			n += len(u)
		}
	}
	return n
}

func tagKey(repo, tag string) string { return repo + ":" + tag }

// get returns the record tag resolved to, if checked since now-tagTrust.
func (c *tagCache) get(key string, now time.Time) (manifestRecord, bool) {
	if c == nil {
		return manifestRecord{}, false
	}
	e, ok := c.entries.GetIfPresent(key)
	if !ok || now.Sub(e.checked) >= tagTrust {
		return manifestRecord{}, false
	}
	return e.rec, true
}

// begin marks the start of a read from the storage, for fill.
func (c *tagCache) begin() uint64 {
	if c == nil {
		return 0
	}
	return c.changes.Load()
}

// fill keeps a resolution read since begin returned since, unless a tag
// changed meanwhile.
func (c *tagCache) fill(key string, since uint64, rec manifestRecord, checked time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changes.Load() == since {
		c.entries.Set(key, tagEntry{rec: rec, checked: checked})
	}
}

// forget drops keys, and repo's list, after its tags were written (or a
// write failed without saying how far it got).
func (c *tagCache) forget(repo string, keys ...string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		c.entries.Invalidate(k)
	}
	c.lists.Invalidate(repo)
	if read := c.listing[repo]; read != nil {
		read.changed = true
	}
	c.changes.Add(1)
}

// forgetAll drops every entry, for a change that may touch any of them.
func (c *tagCache) forgetAll() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries.InvalidateAll()
	c.lists.InvalidateAll()
	for _, read := range c.listing {
		read.changed = true
	}
	c.changes.Add(1)
}
