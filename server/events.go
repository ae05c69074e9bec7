package server

import (
	"net/http"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Events are recorded once an operation succeeded and its answer is
// written: never for a refused or failed request, a HEAD or a 304. With
// no notifier these cost a comparison.

func (h *handlers) manifestEvent(r *http.Request, action, repo string, desc v1.Descriptor, tag string) {
	if h.opts.Events != nil {
		h.opts.Events.Manifest(r, action, repo, desc, tag)
	}
}

func (h *handlers) blobEvent(r *http.Request, action, repo string, desc v1.Descriptor, from string) {
	if h.opts.Events != nil {
		h.opts.Events.Blob(r, action, repo, desc, from)
	}
}
