package auth

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// Config is the auth section of the registry's configuration; its keys
// mirror the config package's auth.* keys one to one. The zero value turns
// auth off. Modes, by what is set:
//
//   - htpasswd.path (and/or policy): Basic auth under the policy;
//   - token.server.enabled: this process issues tokens at TokenPath from
//     the htpasswd users and the policy, and accepts only those tokens;
//   - token.realm with token.certbundle or token.jwks: tokens from an
//     external token server (policy optional, see Bearer.Policy).
type Config struct {
	Htpasswd  HtpasswdConfig  `yaml:"htpasswd"`
	Policy    string          `yaml:"policy"` // YAML, see Policy; re-read on change
	Token     TokenConfig     `yaml:"token"`
	RateLimit RateLimitConfig `yaml:"ratelimit"`
}

type HtpasswdConfig struct {
	Path string `yaml:"path"` // bcrypt htpasswd file, re-read on change
}

type TokenConfig struct {
	// Realm is the token server URL put in challenges. With the built-in
	// server it may stay empty: scheme://host/auth/token of each request.
	Realm    string `yaml:"realm"`
	Service  string `yaml:"service"`  // default "lading"
	Issuer   string `yaml:"issuer"`   // default: the service
	Audience string `yaml:"audience"` // default: the service
	// Where an external issuer's public keys come from: one of these.
	CertBundle string            `yaml:"certbundle"` // PEM certificates or public keys
	JWKS       string            `yaml:"jwks"`       // JWK Set URL, fetched and cached
	Server     TokenServerConfig `yaml:"server"`
}

type TokenServerConfig struct {
	Enabled bool `yaml:"enabled"`
	// Key is the signing key (PEM: Ed25519, ECDSA or RSA). Empty generates
	// an Ed25519 key at start: tokens then die with the process, and
	// several replicas must share a key file instead.
	Key    string        `yaml:"key"`
	Expiry time.Duration `yaml:"expiry"` // default 5m
}

type RateLimitConfig struct {
	Burst int           `yaml:"burst"` // failed logins per address before 429; default 10
	Per   time.Duration `yaml:"per"`   // one more allowed after each; default 6s
}

// Auth is what the server wires in: Authorizer for every request, and the
// built-in token server's handlers when there is one.
type Auth struct {
	Authorizer Authorizer
	// TokenServer is nil unless token.server.enabled; Handler mounts it.
	TokenServer *TokenServer
	// Stale maps each file read again on change ("auth.htpasswd.path",
	// "auth.policy") to whether a change of it failed to load, leaving
	// the previous content in force.
	Stale map[string]func() bool
}

// DefaultService names the registry in tokens when nothing else does.
const DefaultService = "lading"

// New builds auth from its configuration, loading every file it names, so
// that a mistake is an error at start rather than a lock-out later.
func New(cfg Config, logger *slog.Logger) (*Auth, error) {
	logger = orDefault(logger)
	t := cfg.Token
	external := t.CertBundle != "" || t.JWKS != ""
	switch {
	case t.Server.Enabled && external:
		return nil, errors.New("auth: token.server.enabled excludes token.certbundle and token.jwks")
	case !t.Server.Enabled && external && t.Realm == "":
		return nil, errors.New("auth: token.realm is required with an external token issuer")
	case !t.Server.Enabled && t.Realm != "" && !external:
		return nil, errors.New("auth: token.realm needs token.certbundle or token.jwks to verify tokens")
	case t.CertBundle != "" && t.JWKS != "":
		return nil, errors.New("auth: token.certbundle and token.jwks are exclusive")
	case external && cfg.Htpasswd.Path != "":
		return nil, errors.New("auth: htpasswd.path has no use with an external token issuer")
	case t.Server.Enabled && cfg.Htpasswd.Path == "":
		return nil, errors.New("auth: token.server.enabled needs htpasswd.path: the token server logs users in from it")
	}

	// Both files are read again when they change: one any local user may
	// write lets that user grant themselves anything.
	warnLoose(logger, "auth.htpasswd.path", cfg.Htpasswd.Path, 0o002, "written by every local user, who can then add themselves as a user")
	warnLoose(logger, "auth.policy", cfg.Policy, 0o002, "written by every local user, who can then grant themselves anything")
	if t.Server.Enabled {
		warnLoose(logger, "auth.token.server.key", t.Server.Key, 0o004, "read by every local user, who can then sign tokens granting anything")
	}
	if u, err := url.Parse(t.JWKS); t.JWKS != "" && err == nil && u.Scheme == "http" && !loopback(u.Hostname()) {
		logger.Warn("auth.token.jwks is fetched over plain HTTP: anyone on the way can hand Lading keys of their own and forge tokens; use https", "url", redactedURL(t.JWKS))
	}

	var users *Users
	var policy *Policy
	var err error
	if cfg.Htpasswd.Path != "" {
		if users, err = LoadHtpasswd(cfg.Htpasswd.Path, logger); err != nil {
			return nil, fmt.Errorf("auth.htpasswd.path: %w", err)
		}
	}
	if cfg.Policy != "" {
		if policy, err = LoadPolicy(cfg.Policy, logger); err != nil {
			return nil, fmt.Errorf("auth.policy: %w", err)
		}
	}
	limiter := NewLimiter(cfg.RateLimit.Burst, cfg.RateLimit.Per)
	service := cmp.Or(t.Service, DefaultService)
	issuer := cmp.Or(t.Issuer, service)
	audience := cmp.Or(t.Audience, service)
	stale := map[string]func() bool{}
	if users != nil {
		stale["auth.htpasswd.path"] = users.file.isStale
	}
	if policy != nil {
		stale["auth.policy"] = policy.file.isStale
	}

	switch {
	case t.Server.Enabled:
		key, err := signingKey(t.Server.Key, logger)
		if err != nil {
			return nil, fmt.Errorf("auth: token.server.key: %w", err)
		}
		if t.Realm == "" {
			logger.Info("auth: the token realm is built from each request's address; behind a proxy, it must send X-Forwarded-Proto (and X-Forwarded-Host unless it keeps Host), or set auth.token.realm")
		}
		ts := &TokenServer{Service: service, Issuer: issuer, Audience: audience, Users: users, Policy: policy,
			Key: key, Expiry: t.Server.Expiry, Limiter: limiter, Logger: logger}
		return &Auth{Authorizer: ts.Authorizer(t.Realm), TokenServer: ts, Stale: stale}, nil
	case external:
		var keys Keys
		if t.JWKS != "" {
			keys = &JWKS{URL: t.JWKS}
		} else if keys, err = LoadCertBundle(t.CertBundle); err != nil {
			return nil, fmt.Errorf("auth: token.certbundle: %w", err)
		}
		return &Auth{Authorizer: &Bearer{Realm: t.Realm, Service: service, Issuer: issuer, Audience: audience,
			Keys: keys, Policy: policy, Logger: logger}, Stale: stale}, nil
	case users != nil || policy != nil:
		return &Auth{Authorizer: &Basic{Realm: service, Users: users, Policy: policy, Limiter: limiter, Logger: logger}, Stale: stale}, nil
	}
	return &Auth{Authorizer: Open{}}, nil
}

func signingKey(path string, logger *slog.Logger) (*SigningKey, error) {
	if path != "" {
		return LoadSigningKey(path)
	}
	logger.Warn("auth: no token.server.key, signing with a key generated now; tokens die with this process and other replicas reject them")
	return GenerateSigningKey()
}

// Handler mounts the token server's routes (TokenPath, and its JWK Set at
// JWKSPath) in front of next; with no token server it is next itself.
func (a *Auth) Handler(next http.Handler) http.Handler {
	if a.TokenServer == nil {
		return next
	}
	jwks := a.TokenServer.JWKS()
	// Not a ServeMux: its path cleaning would redirect registry requests.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case TokenPath:
			a.TokenServer.ServeHTTP(w, r)
		case JWKSPath:
			jwks.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// JWKSPath is where Handler publishes the built-in server's public key.
const JWKSPath = "/auth/jwks"

// warnLoose warns when the file at path has any of the mode bits in loose.
func warnLoose(logger *slog.Logger, key, path string, loose fs.FileMode, what string) {
	if path == "" {
		return
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&loose != 0 {
		logger.Warn(key+" can be "+what+"; restrict its mode", "path", path, "mode", fmt.Sprintf("%#o", fi.Mode().Perm()))
	}
}

// loopback reports whether host names this machine, where plain HTTP
// crosses no network.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
