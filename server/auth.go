package server

import (
	"context"
	"net/http"

	"github.com/lading-registry/lading/auth"
	"github.com/lading-registry/lading/internal/httpx"
	"github.com/lading-registry/lading/registry"
)

type identityKey struct{}

// identityOf returns who the request acts for, as the authorizer decided.
func identityOf(ctx context.Context) (auth.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(auth.Identity)
	return id, ok
}

// authorize asks az whether the routed request may do what its route needs
// and keeps the answer's identity for the handlers that refine it (the
// catalog filter, the mount check).
func (h *handlers) authorize(az auth.Authorizer) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rt, _ := RouteOf(r.Context())
			if rt.MountFrom != "" && registry.ValidateName(rt.MountFrom) == nil {
				// A challenge names the mount's source too, as Docker's own
				// registry does: a client that asks its token server for
				// what it is challenged with then gets a token that lets
				// the mount happen, where one granting the target alone
				// makes it upload the blob.
				r = r.WithContext(auth.WithChallengeScope(r.Context(), auth.Repository(rt.MountFrom, auth.ActionPull)))
			}
			id, err := az.Authorize(r, needs(rt))
			httpx.SetUser(r.Context(), id.Name) // a refusal names whom it refused
			if err != nil {
				writeError(w, r, h.log, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
		})
	}
}

// needs is the access a route asks for, in the token protocol's terms.
// Pushing implies pulling, as every registry client expects: a push reads
// back what it wrote (HEAD of blobs, GET of upload status).
func needs(rt Route) []auth.Access {
	switch {
	case rt.Name == RouteBase:
		return nil
	case rt.Name == RouteCatalog:
		return []auth.Access{auth.Catalog}
	}
	switch rt.Action {
	case ActionPush:
		return []auth.Access{auth.Repository(rt.Repository, auth.ActionPull, auth.ActionPush)}
	case ActionDelete:
		return []auth.Access{auth.Repository(rt.Repository, auth.ActionDelete)}
	}
	return []auth.Access{auth.Repository(rt.Repository, auth.ActionPull)}
}

// mayMountFrom reports whether the caller may take a blob from repository
// from (empty: from anywhere in the registry). With auth on, a mount without
// a source would let anyone who knows a digest copy a blob out of a
// repository they cannot read, so it is refused and the client uploads.
func (h *handlers) mayMountFrom(r *http.Request, from string) bool {
	if h.opts.Authorizer == nil {
		return true
	}
	if from == "" {
		return false
	}
	id, _ := identityOf(r.Context())
	return h.opts.Authorizer.Can(id, auth.Repository(from, auth.ActionPull))
}

// pullsNothing reports whether the caller may pull no repository at all, as
// far as the authorizer can tell without names.
func (h *handlers) pullsNothing(r *http.Request) bool {
	n, ok := h.opts.Authorizer.(auth.NothingToPull)
	if !ok {
		return false
	}
	id, _ := identityOf(r.Context())
	return n.PullsNothing(id)
}

// visible keeps the repositories the caller may pull.
func (h *handlers) visible(r *http.Request, names []string) []string {
	if h.opts.Authorizer == nil {
		return names
	}
	id, _ := identityOf(r.Context())
	return h.opts.Authorizer.Filter(id, names)
}
