package server

import (
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Blobs and manifests are answered with their digest as ETag. Under a
// digest the bytes never change, and under a tag the ETag changes with
// them, so a client or proxy cache that holds the ETag need not be sent
// the bytes again (If-None-Match: 304 Not Modified), and a range it resumes
// against one (If-Range) is taken only while the ETag still holds
// (RFC 9110, section 13).

func etagOf(d digest.Digest) string { return `"` + d.String() + `"` }

// noneMatch reports whether r's If-None-Match names d's ETag, weakly
// compared, or is "*": the client holds the current content already.
func noneMatch(r *http.Request, d digest.Digest) bool {
	lines := r.Header.Values("If-None-Match")
	if len(lines) == 0 {
		return false // the common case, without building the ETag
	}
	etag := etagOf(d)
	for _, line := range lines {
		for t := range strings.SplitSeq(line, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}

// rangeOf is r's Range, or "" when an If-Range beside it does not name
// d's ETag exactly (a strong comparison): the client's earlier part may be
// of other bytes, so the whole is sent. A date never matches, since no
// Last-Modified is sent.
func rangeOf(r *http.Request, d digest.Digest) string {
	if ir := r.Header.Get("If-Range"); ir != "" && strings.TrimSpace(ir) != etagOf(d) {
		return ""
	}
	return r.Header.Get("Range")
}

// writeNotModified answers a conditional request whose If-None-Match held:
// the headers that name the content, no body.
func writeNotModified(w http.ResponseWriter, d digest.Digest, mediaType string) {
	hdr := w.Header()
	hdr.Set("Docker-Content-Digest", d.String())
	hdr.Set("ETag", etagOf(d))
	if mediaType != "" {
		hdr.Set("Content-Type", mediaType)
	}
	w.WriteHeader(http.StatusNotModified)
}
