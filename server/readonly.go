package server

import (
	"net/http"

	"github.com/lading-registry/lading/registry"
)

// readOnly refuses every request that would change the registry, so reads
// go on during a migration or a storage incident, and a mirror takes no
// content but its upstream's. Cancelling an upload is
// a write too: the session was begun before the switch and stays for later.
func (h *handlers) readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt, _ := RouteOf(r.Context()); rt.Action == ActionPush || rt.Action == ActionDelete {
			why := "the registry is in read-only mode"
			if h.opts.Mirror != nil {
				why = "the registry is a pull-through cache: push to its upstream"
			}
			h.setAllow(w, rt)
			writeError(w, r, h.log, withStatus(http.StatusMethodNotAllowed, registry.CodeUnsupported, "%s", why))
			return
		}
		next.ServeHTTP(w, r)
	})
}
