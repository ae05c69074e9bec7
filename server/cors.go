package server

import (
	"net/http"
	"slices"
)

// corsExposed are the response headers a registry client reads, which a
// browser hides from a page of another origin unless they are exposed.
const corsExposed = "Docker-Content-Digest, Docker-Distribution-API-Version, Link, Location, Range, Content-Range, " +
	"ETag, OCI-Subject, OCI-Filters-Applied, OCI-Tag, Docker-Upload-UUID, WWW-Authenticate, Retry-After"

// CORS lets pages of the given origins (a web interface on another host)
// call the API from a browser: their requests get the Access-Control
// headers, and their preflight OPTIONS a 204 before authentication, which
// browsers do not send credentials for. "*" allows every origin without
// credentials (a page may still send an Authorization header it sets
// itself); named origins are echoed with credentials allowed, so that a
// browser's saved login works there and nowhere else. With no origins it
// returns next.
func CORS(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	all := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every answer, also one without the headers below, varies by
		// Origin: a shared cache (blobs are cacheable for a year) must not
		// hand one origin's answer to another.
		w.Header().Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		if origin == "" || (!all && !slices.Contains(origins, origin)) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		if all {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
			if want := r.Header.Get("Access-Control-Request-Headers"); want != "" {
				h.Set("Access-Control-Allow-Headers", want)
			}
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", corsExposed)
		next.ServeHTTP(w, r)
	})
}
