package auth

import "net/http"

// Authorizer decides, once per request, whether it may do what its route
// needs. The server calls Authorize with the route's needs (none for the
// /v2/ base, Catalog for /v2/_catalog, Repository(name, ...) otherwise) and
// turns a non-nil error, always an *Error, into the response.
type Authorizer interface {
	Authorize(r *http.Request, need []Access) (Identity, error)
	// Can reports whether id may do a, without credentials at hand: the
	// mount check asks it whether the caller may pull the source repository.
	Can(id Identity, a Access) bool
	// Filter keeps the repositories of a catalog page id may pull.
	Filter(id Identity, repos []string) []string
}

// NothingToPull is implemented by authorizers that can tell, without a list
// of names, that id may pull no repository at all: the catalog then answers
// empty without reading the store's, which for a registry of 50,000
// repositories cost a quarter of a second at each request.
type NothingToPull interface {
	PullsNothing(id Identity) bool
}

var (
	_ NothingToPull = (*Basic)(nil)
	_ NothingToPull = (*Bearer)(nil)
)

// Open lets everyone do everything: the authorizer when auth is off.
type Open struct{}

func (Open) Authorize(*http.Request, []Access) (Identity, error) { return Anonymous, nil }
func (Open) Can(Identity, Access) bool                           { return true }
func (Open) Filter(_ Identity, repos []string) []string          { return repos }
