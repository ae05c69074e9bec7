// Package auth decides who may do what on the registry: Basic auth from an
// htpasswd file, token auth per the Docker registry token specification
// (tokens from an external issuer, or from the built-in TokenServer), and a
// Policy of users and groups × repository globs × actions.
//
// The server calls one Authorizer per request with what the route needs,
// and maps the *Error it may return in its one error function:
//
//	id, err := authz.Authorize(r, []auth.Access{auth.Repository(name, auth.ActionPull)})
//	if e, ok := auth.AsError(err); ok {
//		e.SetHeaders(w.Header()) // WWW-Authenticate, Retry-After
//		// respond e.Status with OCI error code e.Code and message e.Message()
//	}
//
// Routes need: nothing for /v2/ (the login ping, answered 401 with the
// challenge until credentials come), Catalog for /v2/_catalog (then Filter
// the page), pull for reads, pull and push for uploads and manifest puts,
// delete for deletes. A cross-repository mount asks Can(id, pull on the
// source) and falls back to a plain upload when it is false.
//
// Statuses: 401 UNAUTHORIZED with a challenge when credentials are missing
// or wrong, or a token is invalid or lacks scope (error="invalid_token" or
// "insufficient_scope" in the Bearer challenge); 403 DENIED when the user
// is known and the policy refuses; 429 TOOMANYREQUESTS with Retry-After
// when an address has failed to log in too often (see Limiter).
//
// Secrets are never logged and never kept: Identity holds the user's name
// and how it was proven, and logs as just that.
package auth
