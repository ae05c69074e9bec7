// Package server serves a registry over the OCI Distribution API v1.1.
//
// The handler is a chain: an outer layer that recovers from panics;
// the router, which resolves every request into a Route (or refuses it)
// and stores it in the request's context; authorization
// (Options.Authorizer) and read-only mode; then Options.Middleware, which
// knows the route; and last the endpoint handlers, which call the registry
// and map its errors to HTTP in one place (mapError). Access logs and
// metrics wrap the whole handler from outside (see RouteLabels).
package server

import (
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/lading-registry/lading/auth"
	"github.com/lading-registry/lading/internal/httpx"
	"github.com/lading-registry/lading/logging"
	"github.com/lading-registry/lading/notify"
	"github.com/lading-registry/lading/registry"
)

// Middleware wraps the endpoint handlers. It runs after routing, so
// RouteOf(r.Context()) is set, and inside the outer recorder, so
// httpx.Record(w) returns that recorder (status and size once the inner
// handler returned) rather than wrapping the writer again.
type Middleware func(http.Handler) http.Handler

// Options configure the HTTP layer. The zero value serves every endpoint.
type Options struct {
	// Logger receives error logs (access logs wrap the handler from
	// outside, see RouteLabels). Nil means slog.Default().
	Logger *slog.Logger
	// DisableDeletes answers DELETE of blobs, manifests and tags with 405
	// UNSUPPORTED. Cancelling an upload stays allowed.
	DisableDeletes bool
	// MaxUploads bounds the requests streaming blob data at once (PATCH,
	// PUT and monolithic POST); beyond it they get 429 TOOMANYREQUESTS with
	// a Retry-After. 0 means DefaultMaxUploads, negative no limit.
	MaxUploads int
	// BodyIdleTimeout fails a request body (an upload or a manifest) that
	// sends nothing for this long, with 408, and cuts a download whose
	// client takes less than a piece in this long (see sendPiece), so that
	// a stalled client frees its connection, goroutine and file. 0 means
	// DefaultBodyIdleTimeout, negative no limit.
	BodyIdleTimeout time.Duration
	// Middleware is applied in order, the first outermost, between the
	// router and the endpoint handlers.
	Middleware []Middleware
	// MaxBlobSize, when above 0, bounds the size of a blob pushed: a body
	// that would take it past the limit gets 413 BLOB_UPLOAD_INVALID,
	// refused unread when its length is declared, else read no further.
	MaxBlobSize int64
	// ReadOnly refuses pushes and deletes with 405 UNSUPPORTED; reads go on.
	ReadOnly bool
	// Authorizer, when set, decides every routed request before Middleware
	// runs, filters the catalog and guards cross-repository mounts.
	Authorizer auth.Authorizer

	// Mirror, when set, makes the registry a pull-through cache of it:
	// pulls that miss fill from it; pushes and deletes get 405 UNSUPPORTED.
	Mirror Mirror
	// Events, when not nil, records what each request did once it
	// succeeded: manifests and blobs pushed, pulled (GET, not HEAD),
	// mounted and deleted.
	Events *notify.Notifier
}

// New returns the HTTP handler of the distribution API over reg.
func New(reg *registry.Registry, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BodyIdleTimeout == 0 {
		opts.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	h := &handlers{reg: reg, log: opts.Logger, opts: opts, uploads: newUploadSlots(opts.MaxUploads)}
	h.endpoints = h.endpointTable()
	var inner http.Handler = http.HandlerFunc(h.serve)
	for i := len(opts.Middleware) - 1; i >= 0; i-- {
		inner = opts.Middleware[i](inner)
	}
	if opts.ReadOnly || opts.Mirror != nil {
		inner = h.readOnly(inner)
	}
	if opts.Authorizer != nil {
		inner = h.authorize(opts.Authorizer)(inner)
	}
	return h.outer(h.route(inner))
}

type handlers struct {
	reg       *registry.Registry
	log       *slog.Logger
	opts      Options
	endpoints map[RouteName]endpoint
	uploads   uploadSlots
}

// outer turns a panic into a 500, so a bug in one request neither kills
// the process nor goes unanswered, and sets the API version header every
// response carries. Access logs and metrics wrap the whole handler from
// outside (see RouteLabels).
func (h *handlers) outer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, w := httpx.Record(w)
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v != http.ErrAbortHandler {
				h.log.ErrorContext(r.Context(), "panic serving request", "method", r.Method, "path", r.URL.EscapedPath(),
					"request_id", logging.RequestID(r.Context()), "panic", v, "stack", string(debug.Stack()))
			}
			if v == http.ErrAbortHandler || rec.WroteHeader() {
				// A status (and maybe part of a body) is out: cut the
				// connection so the client cannot take it for a whole one.
				panic(http.ErrAbortHandler)
			}
			writeError(w, r, h.log, errPanic)
		}()
		if r.Body == nil {
			// A server request always has a body; one built by hand (a
			// test, an embedding program) may not, and means the same.
			r.Body = http.NoBody
		}
		next.ServeHTTP(w, r)
	})
}

var errPanic = &registry.Error{Code: registry.CodeUnknown, Message: "internal server error"}

// RouteLabels names a request's route and repository for access logs and
// metrics wrapped around the server: from the route the router attached,
// or, outside the router, by routing r again. Requests with no route (404,
// 400) have none.
func RouteLabels(r *http.Request) (route, repository string) {
	rt, ok := RouteOf(r.Context())
	if !ok {
		var err error
		if rt, err = parseRoute(r); err != nil {
			return "", ""
		}
	}
	return string(rt.Name), rt.Repository
}

// route resolves the request's Route, or answers it: 404 for a path that
// names no endpoint, 400 for a malformed name, 405 for a wrong method.
func (h *handlers) route(next http.Handler) http.Handler {
	// Fill the labels of an access log or metrics middleware outside.
	next = httpx.Label(RouteLabels)(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, err := parseRoute(r)
		if err != nil {
			writeError(w, r, h.log, err)
			return
		}
		if !allowed(rt, r.Method) {
			h.setAllow(w, rt)
			writeError(w, r, h.log, errMethodNotAllowed(r.Method))
			return
		}
		next.ServeHTTP(w, r.WithContext(withRoute(r.Context(), rt)))
	})
}

// serve dispatches a routed request to its endpoint handler and writes the
// handler's error, if any, through mapError.
func (h *handlers) serve(w http.ResponseWriter, r *http.Request) {
	rt, _ := RouteOf(r.Context())
	endpoint, ok := h.endpoints[rt.Name]
	if !ok {
		writeError(w, r, h.log, errNotFound(r.URL.EscapedPath()))
		return
	}
	if rt.Name != RouteBlob && h.opts.BodyIdleTimeout > 0 {
		// Blob bodies go through stallGuard; every other body (a manifest,
		// a listing, an error) gets the same deadline ahead of each write.
		w = bodyWriter{w, h.stallGuard(w, r)}
	}
	release, ok := h.limit(w, r, rt)
	if !ok {
		return
	}
	defer release()
	if err := endpoint(w, r, rt); err != nil {
		if status, _, _ := mapError(err); status == http.StatusMethodNotAllowed {
			h.setAllow(w, rt) // deletes disabled
		}
		writeError(w, r, h.log, err)
	}
}

// setAllow lists in Allow the methods rt's endpoint answers on this
// registry, as a 405 must (RFC 9110, 15.5.6): without the writes of a
// read-only one, or the deletes of one that disables them.
// An endpoint left with none gets an empty Allow, which says so.
func (h *handlers) setAllow(w http.ResponseWriter, rt Route) {
	var allow []string
	for _, m := range methods[rt.Name] {
		write := m != http.MethodGet && m != http.MethodHead
		if ((h.opts.ReadOnly || h.opts.Mirror != nil) && write) || (h.opts.DisableDeletes && m == http.MethodDelete && rt.Name != RouteUpload) {
			continue
		}
		allow = append(allow, m)
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
}

// bodyWriter writes a response body through stallGuard's writer: a client
// that stops reading a manifest or a listing loses its connection after
// BodyIdleTimeout instead of holding the handler for ever.
type bodyWriter struct {
	http.ResponseWriter
	body io.Writer
}

func (b bodyWriter) Write(p []byte) (int, error) { return b.body.Write(p) }

// Unwrap lets http.ResponseController and the middlewares' Recorder reach
// the writer beneath.
func (b bodyWriter) Unwrap() http.ResponseWriter { return b.ResponseWriter }

// endpoint serves one route. It returns an error only before writing
// anything, so the error can still become the response.
type endpoint func(http.ResponseWriter, *http.Request, Route) error

func (h *handlers) endpointTable() map[RouteName]endpoint {
	return map[RouteName]endpoint{
		RouteBase:        h.base,
		RouteCatalog:     h.catalog,
		RouteTags:        h.tags,
		RouteManifest:    h.manifest,
		RouteBlob:        h.blob,
		RouteUploadStart: h.startUpload,
		RouteUpload:      h.upload,
		RouteReferrers:   h.referrers,
	}
}

func (h *handlers) base(w http.ResponseWriter, r *http.Request, _ Route) error {
	writeJSON(w, r, http.StatusOK, struct{}{})
	return nil
}

// repository returns the route's repository.
func (h *handlers) repository(rt Route) (*registry.Repository, error) {
	return h.reg.Repository(rt.Repository)
}

func (h *handlers) deletesDisabled() error {
	if h.opts.DisableDeletes {
		return withStatus(http.StatusMethodNotAllowed, registry.CodeUnsupported, "deletes are disabled on this registry")
	}
	return nil
}
