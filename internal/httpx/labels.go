package httpx

import (
	"context"
	"net/http"
)

// Labels name what a request was for, in bounded vocabulary fit for
// metrics: the route ("manifest", "blob-upload") and the repository.
//
// Middleware outside the router cannot see what the router learned, since
// the router hands a new request inward. So the outermost middleware puts
// an empty Labels in the context, a middleware inside the router (Label)
// fills it, and the outer one reads it once the handler returned. Requests
// with no route (404, 400) keep empty labels and are still measured.
//
// User is who the request acted for once auth decided ("" for anonymous
// or undecided), for the access log only: no metric takes it as a label.
type Labels struct {
	Route      string
	Repository string
	User       string
}

type labelsKey struct{}

// WithLabels returns the request's Labels, installing an empty one (and
// returning the request carrying it) when no outer middleware did.
func WithLabels(r *http.Request) (*Labels, *http.Request) {
	l, ctx := ContextLabels(r.Context())
	if ctx != r.Context() {
		r = r.WithContext(ctx)
	}
	return l, r
}

// ContextLabels is WithLabels for a middleware that adds values of its own
// to the context: each WithContext copies the request.
func ContextLabels(ctx context.Context) (*Labels, context.Context) {
	if l, ok := ctx.Value(labelsKey{}).(*Labels); ok {
		return l, ctx
	}
	l := &Labels{}
	return l, context.WithValue(ctx, labelsKey{}, l)
}

// SetUser records in ctx's Labels, when an outer middleware installed them,
// who the request acts for.
func SetUser(ctx context.Context, name string) {
	if l, ok := ctx.Value(labelsKey{}).(*Labels); ok {
		l.User = name
	}
}

// User returns who ctx's request acts for, as SetUser recorded it: "" for
// an anonymous request, or when no outer middleware installed Labels.
func User(ctx context.Context) string {
	if l, ok := ctx.Value(labelsKey{}).(*Labels); ok {
		return l.User
	}
	return ""
}

// Label returns a middleware, for a place where the route is known, that
// fills the Labels an outer middleware installed, using info.
func Label(info func(*http.Request) (route, repo string)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if l, ok := r.Context().Value(labelsKey{}).(*Labels); ok {
				l.Route, l.Repository = info(r)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Resolve fills l from info when nothing inside labelled the request, for
// handlers that can name their route from the request alone.
func (l *Labels) Resolve(r *http.Request, info func(*http.Request) (route, repo string)) {
	if l.Route == "" && info != nil {
		l.Route, l.Repository = info(r)
	}
}
