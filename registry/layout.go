package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
)

// The storage layout. Every path the registry touches is made here, so the
// shape of the store can be read (and changed) in one place:
//
//	/format                                          the layout's version (format.go)
//	/blobs/<alg>/<hex[:2]>/<hex>                     blob bytes, stored once
//	/catalog/<escaped name>                          one marker per repository
//	/repositories/<name>/_layers/<alg>/<hex>         blob linked into the repo
//	/repositories/<name>/_manifests/<alg>/<hex>      manifest in the repo
//	/repositories/<name>/_tags/<tag>                 tag → manifest digest
//	/repositories/<name>/_tagrefs/<alg>/<hex>/<tag>  marker: tag was pointed at digest
//	/repositories/<name>/_referrers/<alg>/<hex>/<alg>/<hex>
//	                                                 subject → referrer descriptor
//	/repositories/<name>/_pulled/<alg>/<hex>         marker: a mirror last served the manifest
//	                                                 at its time (NotePull)
//	/repositories/<name>/_uploads/<id>.data          upload bytes so far
//	/repositories/<name>/_uploads/<id>.state         offset, hash state, start time
//	/gc/state                                        the collector's progress, read by writers
//	/gc/pins/<run>/<alg>/<hex>                       digest a writer uses during a collection
//	/retention/state                                 when the retention rules were last applied
//	/locks/<escaped key>                             lease of a backend lock (an upload session,
//	                                                 a manifest, the collector, the purge,
//	                                                 the retention rules)
//
// Repository name components never start with "_", so the "_" directories
// cannot collide with a nested repository. The catalog is flat so a page of
// it is one ordered listing, never a walk over every repository's contents.
// An upload session is two objects side by side, not a directory of its
// own: on a file system a directory per session costs a block to allocate,
// sync and free for every blob pushed.
const (
	blobsRoot = "/blobs"
	reposRoot = "/repositories"
	catalog   = "/catalog"
)

func blobPath(d digest.Digest) string {
	hex := d.Encoded()
	return blobsRoot + "/" + string(d.Algorithm()) + "/" + hex[:2] + "/" + hex
}

func repoPath(name string) string { return reposRoot + "/" + name }

func layerLinkPath(repo string, d digest.Digest) string {
	return repoPath(repo) + "/_layers/" + string(d.Algorithm()) + "/" + d.Encoded()
}

func manifestLinkPath(repo string, d digest.Digest) string {
	return repoPath(repo) + "/_manifests/" + string(d.Algorithm()) + "/" + d.Encoded()
}

func tagsPath(repo string) string { return repoPath(repo) + "/_tags" }

func tagPath(repo, tag string) string { return tagsPath(repo) + "/" + tag }

func referrersPath(repo string, subject digest.Digest) string {
	return repoPath(repo) + "/_referrers/" + string(subject.Algorithm()) + "/" + subject.Encoded()
}

func referrerPath(repo string, subject, referrer digest.Digest) string {
	return referrersPath(repo, subject) + "/" + string(referrer.Algorithm()) + "/" + referrer.Encoded()
}

func tagRefsRoot(repo string) string { return repoPath(repo) + "/_tagrefs" }

func tagRefsPath(repo string, d digest.Digest) string {
	return tagRefsRoot(repo) + "/" + string(d.Algorithm()) + "/" + d.Encoded()
}

func tagRefPath(repo string, d digest.Digest, tag string) string {
	return tagRefsPath(repo, d) + "/" + tag
}

func pulledRoot(repo string) string { return repoPath(repo) + "/_pulled" }

func pulledPath(repo string, d digest.Digest) string {
	return pulledRoot(repo) + "/" + string(d.Algorithm()) + "/" + d.Encoded()
}

func lockPath(key string) string { return "/locks/" + escapeName(key) }

func uploadsPath(repo string) string { return repoPath(repo) + "/_uploads" }

const (
	uploadDataSuffix  = ".data"
	uploadStateSuffix = ".state"
)

func uploadDataPath(repo, id string) string { return uploadsPath(repo) + "/" + id + uploadDataSuffix }

func uploadStatePath(repo, id string) string { return uploadsPath(repo) + "/" + id + uploadStateSuffix }

// uploadLockKey names the lock that one request at a time holds on a
// session (its chunks, its commit, its purge).
func uploadLockKey(repo, id string) string { return repo + "/" + id }

// manifestLockKey names the lock a push and a digest delete of one
// manifest hold (lockManifest): a hash, so that the lock's name stays one
// short path segment whatever the repository's name and the digest's
// algorithm, and never meets an upload's key (which holds a '/').
func manifestLockKey(repo string, d digest.Digest) string {
	sum := sha256.Sum256([]byte(repo + "@" + d.String()))
	return "manifest-" + hex.EncodeToString(sum[:20])
}

// uploadEntryID returns the session an entry of a repository's _uploads
// belongs to; ok is false for anything else there.
func uploadEntryID(entry string) (id string, ok bool) {
	base := path.Base(entry)
	for _, suffix := range []string{uploadDataSuffix, uploadStateSuffix} {
		if id, found := strings.CutSuffix(base, suffix); found && validUploadID(id) {
			return id, true
		}
	}
	return "", false
}

func catalogPath(repo string) string { return catalog + "/" + escapeName(repo) }

const retentionStatePath = "/retention/state"

const (
	gcStatePath = "/gc/state"
	gcPinsPath  = "/gc/pins"
)

func gcRunPinsPath(run string) string { return gcPinsPath + "/" + run }

func gcPinPath(run string, d digest.Digest) string {
	return gcRunPinsPath(run) + "/" + string(d.Algorithm()) + "/" + d.Encoded()
}

// escapeName flattens a repository name into one path segment while keeping
// lexical order, so a listing of /catalog is already in name order: '-', '.'
// and '/' sort below every other character a name may hold, and so do their
// escapes "-0", "-1", "-2", which also never prefix one another.
func escapeName(name string) string {
	var b strings.Builder
	b.Grow(len(name) + 8)
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '-':
			b.WriteString("-0")
		case '.':
			b.WriteString("-1")
		case '/':
			b.WriteString("-2")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescapeName reverses escapeName; ok is false for a segment escapeName
// cannot have produced.
func unescapeName(seg string) (string, bool) {
	var b strings.Builder
	b.Grow(len(seg))
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c != '-' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(seg) {
			return "", false
		}
		i++
		switch seg[i] {
		case '0':
			b.WriteByte('-')
		case '1':
			b.WriteByte('.')
		case '2':
			b.WriteByte('/')
		default:
			return "", false
		}
	}
	return b.String(), true
}

// tagLockKey is the lock a push takes on an immutable tag, so that two
// first pushes of it cannot both find it absent.
func tagLockKey(repo, tag string) string {
	sum := sha256.Sum256([]byte(repo + ":" + tag))
	return "tag-" + hex.EncodeToString(sum[:20])
}
