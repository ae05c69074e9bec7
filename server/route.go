package server

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/lading-registry/lading/registry"
)

// RouteName names an endpoint of the distribution API, for logs, metrics
// and authorization.
type RouteName string

const (
	RouteBase        RouteName = "base"
	RouteCatalog     RouteName = "catalog"
	RouteTags        RouteName = "tags"
	RouteManifest    RouteName = "manifest"
	RouteBlob        RouteName = "blob"
	RouteUploadStart RouteName = "blob-upload-start"
	RouteUpload      RouteName = "blob-upload"
	RouteReferrers   RouteName = "referrers"
)

// Action is what a request does to its repository, in the vocabulary of
// registry scopes: auth checks it, metrics count by it.
type Action string

const (
	ActionNone   Action = ""
	ActionPull   Action = "pull"
	ActionPush   Action = "push"
	ActionDelete Action = "delete"
)

// Route is what the router learned about a request before any handler ran.
// Middleware installed through Options.Middleware finds it with RouteOf.
type Route struct {
	Name RouteName
	// Repository is the repository's name; empty for base and catalog.
	Repository string
	// Reference is the last path component after the endpoint's keyword:
	// a tag or digest, an upload session id, or a subject digest. It is
	// percent-decoded but not validated.
	Reference string
	Action    Action
	// MountFrom is the source repository of a cross-repository mount, which
	// the client must be allowed to pull from.
	MountFrom string
}

type routeKey struct{}

// RouteOf returns the route the router attached to the request's context.
func RouteOf(ctx context.Context) (Route, bool) {
	rt, ok := ctx.Value(routeKey{}).(Route)
	return rt, ok
}

func withRoute(ctx context.Context, rt Route) context.Context {
	return context.WithValue(ctx, routeKey{}, rt)
}

// methods lists the methods each endpoint answers, for 405 and Allow.
// Whatever answers GET answers HEAD, with the same headers and no body.
var methods = map[RouteName][]string{
	RouteBase:        {http.MethodGet, http.MethodHead},
	RouteCatalog:     {http.MethodGet, http.MethodHead},
	RouteTags:        {http.MethodGet, http.MethodHead},
	RouteManifest:    {http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete},
	RouteBlob:        {http.MethodGet, http.MethodHead, http.MethodDelete},
	RouteUploadStart: {http.MethodPost},
	RouteUpload:      {http.MethodGet, http.MethodHead, http.MethodPatch, http.MethodPut, http.MethodDelete},
	RouteReferrers:   {http.MethodGet, http.MethodHead},
}

// parseRoute maps a request to a Route. It reads the escaped path, never a
// cleaned one: "..", "." and empty components, and percent-encoding inside
// a name, are refused rather than resolved, so two spellings never reach
// one repository and nothing is answered with a redirect. The route is
// found from the right end of the path because a name has any number of
// components, and any of them may be "blobs", "manifests" or "tags".
func parseRoute(r *http.Request) (Route, error) {
	// r.URL.Query drops what it cannot parse (a stray ';', a bad escape,
	// or every parameter past Go's limit on their number): refused here,
	// so no endpoint acts on part of what was asked.
	if q := r.URL.RawQuery; q != "" {
		if _, err := url.ParseQuery(q); err != nil {
			return Route{}, withStatus(http.StatusBadRequest, registry.CodeUnsupported, "malformed query: %v", err)
		}
	}
	p := r.URL.EscapedPath()
	rest, ok := strings.CutPrefix(p, "/v2")
	if !ok || (rest != "" && rest[0] != '/') {
		return Route{}, errNotFound(p)
	}
	rest = strings.TrimPrefix(rest, "/")
	if rest == "" {
		return withAction(Route{Name: RouteBase}, r), nil
	}
	if rest == "_catalog" {
		return withAction(Route{Name: RouteCatalog}, r), nil
	}
	parts := strings.Split(rest, "/")
	for i, part := range parts {
		if err := checkComponent(part, i == len(parts)-1); err != nil {
			return Route{}, err
		}
	}

	n := len(parts)
	var rt Route
	var nameParts []string
	switch {
	case n >= 4 && parts[n-3] == "blobs" && parts[n-2] == "uploads":
		rt.Name, nameParts = RouteUpload, parts[:n-3]
		if parts[n-1] == "" {
			rt.Name = RouteUploadStart
		}
	case n >= 3 && parts[n-2] == "blobs" && parts[n-1] == "uploads":
		rt.Name, nameParts = RouteUploadStart, parts[:n-2]
	case n >= 3 && parts[n-2] == "tags" && parts[n-1] == "list":
		rt.Name, nameParts = RouteTags, parts[:n-2]
	case n >= 3 && parts[n-2] == "manifests":
		rt.Name, nameParts = RouteManifest, parts[:n-2]
	case n >= 3 && parts[n-2] == "blobs":
		rt.Name, nameParts = RouteBlob, parts[:n-2]
	case n >= 3 && parts[n-2] == "referrers":
		rt.Name, nameParts = RouteReferrers, parts[:n-2]
	default:
		return Route{}, errNotFound(p)
	}
	if rt.Name != RouteTags && rt.Name != RouteUploadStart {
		ref, err := url.PathUnescape(parts[n-1])
		if err != nil || ref == "" {
			return Route{}, errNotFound(p)
		}
		rt.Reference = ref
	}
	name := strings.Join(nameParts, "/")
	if strings.Contains(name, "%") {
		return Route{}, &registry.Error{Code: registry.CodeNameInvalid, Message: "repository name must not be percent-encoded"}
	}
	if err := registry.ValidateName(name); err != nil {
		return Route{}, err
	}
	rt.Repository = name
	if rt.Name == RouteUploadStart {
		if from := r.URL.Query().Get("from"); from != "" && r.URL.Query().Has("mount") {
			rt.MountFrom = from
		}
	}
	return withAction(rt, r), nil
}

// checkComponent refuses the path components that a path cleaner would
// rewrite, and percent-encoded separators, which would let one component
// pose as several.
func checkComponent(part string, last bool) error {
	switch {
	case part == "" && !last:
		return &registry.Error{Code: registry.CodeNameInvalid, Message: "empty path component"}
	case part == "." || part == "..":
		return &registry.Error{Code: registry.CodeNameInvalid, Message: "dot path component"}
	}
	if !strings.Contains(part, "%") {
		return nil
	}
	dec, err := url.PathUnescape(part)
	if err != nil {
		return &registry.Error{Code: registry.CodeNameInvalid, Message: "invalid percent-encoding in path"}
	}
	if dec == "." || dec == ".." || strings.ContainsAny(dec, "/\\") {
		return &registry.Error{Code: registry.CodeNameInvalid, Message: "encoded path separator"}
	}
	return nil
}

func withAction(rt Route, r *http.Request) Route {
	switch {
	case rt.Name == RouteBase:
		rt.Action = ActionNone
	case rt.Name == RouteUploadStart || rt.Name == RouteUpload:
		// Asking for a session's status or cancelling it is part of pushing.
		rt.Action = ActionPush
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		rt.Action = ActionPull
	case r.Method == http.MethodDelete:
		rt.Action = ActionDelete
	default:
		rt.Action = ActionPush
	}
	return rt
}

func allowed(rt Route, method string) bool {
	return slices.Contains(methods[rt.Name], method)
}
