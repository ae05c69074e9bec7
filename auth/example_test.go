package auth_test

import (
	"log/slog"
	"net/http"

	"github.com/lading-registry/lading/auth"
)

// Wiring auth into a server: build it from the configuration, put the token
// server's routes in front of the registry, and authorize each request.
func Example() {
	a, err := auth.New(auth.Config{
		Htpasswd: auth.HtpasswdConfig{Path: "/etc/lading/htpasswd"},
		Policy:   "/etc/lading/policy.yaml",
		Token:    auth.TokenConfig{Server: auth.TokenServerConfig{Enabled: true, Key: "/etc/lading/token-key.pem"}},
	}, slog.Default())
	if err != nil {
		return // the files are not there in this example
	}
	registry := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := a.Authorizer.Authorize(r, []auth.Access{auth.Repository("team/app", auth.ActionPull)})
		if e, ok := auth.AsError(err); ok {
			e.SetHeaders(w.Header())
			http.Error(w, e.Code+": "+e.Message(), e.Status)
			return
		}
		slog.Info("pull", "identity", id) // logs user and method only
	})
	http.ListenAndServe(":5000", a.Handler(registry))
}
