package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/notify"
	"github.com/lading-registry/lading/registry"
)

// Mirror is the upstream of a pull-through cache (Options.Mirror): pulls
// that miss locally are filled from it, and the registry refuses pushes
// and deletes as a read-only one does. The catalog and referrers are
// answered from what the mirror holds.
type Mirror interface {
	// Manifest brings the manifest named by reference (a tag or a
	// digest) in repository repo up to date with the upstream before it
	// is read locally: fetched and stored when missing, and for a tag
	// checked for a move once it is older than the mirror's TTL. Its
	// error is the answer (the upstream does not have it, or cannot be
	// asked while nothing is stored).
	Manifest(ctx context.Context, repo, reference string) error
	// Pulled hears of manifest d of repo served to a GET or HEAD, for
	// the mirror's eviction. It must return at once.
	Pulled(repo string, d digest.Digest)
	// StatBlob returns the size of blob d on the upstream, storing nothing.
	StatBlob(ctx context.Context, repo string, d digest.Digest) (int64, error)
	// FetchBlob begins the fetch of blob d from the upstream.
	FetchBlob(ctx context.Context, repo string, d digest.Digest) (BlobFill, error)
	// Tags lists the repository's tags upstream. ok is false when the
	// upstream cannot be asked: the local tags are listed instead.
	Tags(ctx context.Context, repo string) (tags []string, ok bool, err error)
}

// ErrFetchedMeanwhile is FetchBlob's answer to a request that waited for
// another's fetch of the same blob, which stored it: the caller reads the
// store.
var ErrFetchedMeanwhile = errors.New("the blob was fetched by another request meanwhile")

// BlobFill is a blob on its way from the upstream.
type BlobFill interface {
	// Size is the blob's length, from the upstream's answer.
	Size() int64
	// CopyTo writes the blob to w while storing it. The last byte goes to
	// w only once the blob is stored with its digest verified: a client
	// never receives the whole of a blob that failed its check.
	CopyTo(w io.Writer) error
	// Close ends the fetch; after CopyTo it does nothing.
	Close() error
}

// blobMissing reports an error of a blob the repository does not hold.
func blobMissing(err error) bool {
	return errors.Is(err, registry.ErrBlobUnknown) || errors.Is(err, registry.ErrNameUnknown)
}

// mirrorBlobHead answers a HEAD for a blob the mirror does not hold from
// the upstream's, without fetching the bytes.
func (h *handlers) mirrorBlobHead(w http.ResponseWriter, r *http.Request, rt Route, d digest.Digest) error {
	size, err := h.opts.Mirror.StatBlob(r.Context(), rt.Repository, d)
	if err != nil {
		return err
	}
	return writeBlobHeader(w, d, size, 0, size, rangeNone)
}

// mirrorBlobGet streams a blob the mirror does not hold from the upstream
// while storing it. A Range is not honoured on such a miss (RFC 9110
// allows it): the whole blob is fetched and stored, and the client gets it
// with a 200, from which it takes what it asked for.
//
// filled says another request's fetch stored the blob while this one
// waited for it: the caller reads the store.
func (h *handlers) mirrorBlobGet(w http.ResponseWriter, r *http.Request, rt Route, d digest.Digest) (filled bool, err error) {
	fill, err := h.opts.Mirror.FetchBlob(r.Context(), rt.Repository, d)
	if errors.Is(err, ErrFetchedMeanwhile) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer fill.Close()
	if err := writeBlobHeader(w, d, fill.Size(), 0, fill.Size(), rangeNone); err != nil {
		return false, err
	}
	if err := fill.CopyTo(h.stallGuard(w, r)); err != nil {
		if r.Context().Err() == nil {
			h.log.WarnContext(r.Context(), "blob from the upstream not stored", "repository", rt.Repository, "digest", d, "error", err)
		}
		// Cut the connection: the client must not take what it got for
		// the whole blob, whatever its own checks.
		panic(http.ErrAbortHandler)
	}
	h.blobEvent(r, notify.ActionPull, rt.Repository, v1.Descriptor{Digest: d, Size: fill.Size()}, "")
	return false, nil
}

// mirrorTags pages through the upstream's tags as tags does through the
// local ones; handled is false when the upstream could not be asked.
func (h *handlers) mirrorTags(w http.ResponseWriter, r *http.Request, rt Route, page pageRequest) (handled bool, err error) {
	tags, ok, err := h.opts.Mirror.Tags(r.Context(), rt.Repository)
	if err != nil || !ok {
		return false, err
	}
	tags = slices.Compact(slices.Sorted(slices.Values(tags)))
	list := tagList{Name: rt.Repository, Tags: []string{}}
	if !page.none {
		from, _ := slices.BinarySearch(tags, page.last)
		if page.last != "" && from < len(tags) && tags[from] == page.last {
			from++
		}
		rest := tags[from:]
		list.Tags = rest[:min(page.n, len(rest))]
		if len(rest) > page.n && page.n > 0 {
			setNextLink(w, "/v2/"+rt.Repository+"/tags/list", page.n, list.Tags[len(list.Tags)-1], nil)
		}
	}
	writeJSON(w, r, http.StatusOK, list)
	return true, nil
}
