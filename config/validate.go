package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/internal/httpx"
)

// validate checks every setting and returns one error per problem, each
// naming the key, what is allowed, and where the bad value came from.
func validate(c *Config, origin map[string]string) []error {
	v := &validator{origin: origin}

	v.hostPort("http.addr", c.HTTP.Addr, false)
	v.hostPort("http.debugaddr", c.HTTP.DebugAddr, true)
	if c.HTTP.DebugAddr != "" && c.HTTP.DebugAddr == c.HTTP.Addr {
		v.fail("http.debugaddr", "must differ from http.addr; leave it empty to serve metrics on http.addr")
	}
	v.url("tracing.endpoint", c.Tracing.Endpoint)
	if r := c.Tracing.SampleRatio; r < 0 || r > 1 {
		v.fail("tracing.sampleratio", "%v must be from 0 to 1", r)
	}
	if c.HTTP.Pprof && c.HTTP.DebugAddr == "" {
		v.fail("http.pprof", "needs http.debugaddr: profiles are served only on that separate listener")
	}
	if _, err := httpx.ParseOrigins(c.HTTP.CORSOrigins); err != nil {
		v.fail("http.corsorigins", "%v", err)
	}
	if _, err := httpx.ParseProxies(c.HTTP.TrustedProxies); err != nil {
		v.fail("http.trustedproxies", "%v; give addresses or CIDR ranges separated by commas", err)
	}
	tlsErrs := len(v.errs)
	v.together("http.tls.cert", c.HTTP.TLS.Cert, "http.tls.key", c.HTTP.TLS.Key)
	v.file("http.tls.cert", c.HTTP.TLS.Cert)
	v.file("http.tls.key", c.HTTP.TLS.Key)
	v.file("http.tls.clientca", c.HTTP.TLS.ClientCA)
	if c.HTTP.TLS.ClientCA != "" && c.HTTP.TLS.Cert == "" {
		v.fail("http.tls.clientca", "needs http.tls.cert and http.tls.key: client certificates are only asked for over TLS")
	}
	if len(v.errs) == tlsErrs && c.HTTP.TLS.Cert != "" {
		// Parse now so a wrong key or a non-PEM file stops the start.
		if _, err := c.HTTP.TLS.ServerConfig(nil); err != nil {
			if ke, ok := err.(*Error); ok {
				ke.Source = v.origin[ke.Key]
			}
			v.errs = append(v.errs, err)
		}
	}
	v.positive("http.readheadertimeout", c.HTTP.ReadHeaderTimeout)
	v.positive("http.idletimeout", c.HTTP.IdleTimeout) // 0 would keep idle connections for ever
	v.notNegative("http.draintimeout", c.HTTP.DrainTimeout)
	v.notNegative("http.shutdowndelay", c.HTTP.ShutdownDelay)
	v.notNegative("http.bodyidletimeout", c.HTTP.BodyIdleTimeout)
	if c.HTTP.MaxUploads < 0 {
		v.fail("http.maxuploads", "%d must be 0 (no limit) or more", c.HTTP.MaxUploads)
	}
	if c.HTTP.MaxManifestSize <= 0 {
		v.fail("http.maxmanifestsize", "must be greater than 0")
	}

	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")

	v.oneOf("storage.driver", c.Storage.Driver, "filesystem", "inmemory", "s3")
	if c.Storage.ManifestCache < 0 {
		v.fail("storage.manifestcache", "must be 0 (off) or more")
	}
	switch c.Storage.Driver {
	case "filesystem":
		v.root("storage.filesystem.root", c.Storage.Filesystem.Root)
	case "s3":
		v.s3(&c.Storage.S3)
	}

	v.hostPort("redis.addr", c.Redis.Addr, true)
	if c.Redis.Password != "" && c.Redis.Addr == "" {
		v.fail("redis.password", "is set but redis.addr is empty")
	}
	if c.Redis.DB < 0 {
		v.fail("redis.db", "%d must be 0 or more", c.Redis.DB)
	}

	v.auth(&c.Auth)
	if _, err := glob.ParseTagRules(c.Tags.Immutable); err != nil {
		v.fail("tags.immutable", "%v", err)
	}

	v.notNegative("gc.interval", c.GC.Interval)
	v.notNegative("gc.grace", c.GC.Grace)
	v.positive("uploads.purgeage", c.Uploads.PurgeAge)
	v.proxy(c)
	v.notifications(&c.Notifications)
	v.retention(c)
	v.quotas(c)
	return v.errs
}

func (v *validator) proxy(c *Config) {
	p := &c.Proxy
	v.url("proxy.remoteurl", p.RemoteURL)
	v.notNegative("proxy.tagttl", p.TagTTL)
	if p.EvictAfter != 0 && p.EvictAfter < time.Hour {
		v.fail("proxy.evictafter", "%v must be 0 (keep everything) or at least 1h", p.EvictAfter)
	}
	if p.RemoteURL == "" {
		if p.Username != "" || p.Password != "" {
			v.fail("proxy.remoteurl", "must be set with proxy.username and proxy.password")
		}
		if p.EvictAfter != 0 {
			v.fail("proxy.evictafter", "needs proxy.remoteurl: only a mirror's content is evicted")
		}
		return
	}
	if u, err := url.Parse(p.RemoteURL); err == nil && u.User != nil {
		v.fail("proxy.remoteurl", "must not hold credentials: give them in proxy.username and proxy.password")
	}
	v.together("proxy.username", p.Username, "proxy.password", string(p.Password))
	if c.ReadOnly {
		v.fail("readonly", "excludes proxy.remoteurl: a mirror writes what it fetches (and refuses pushes and deletes by itself)")
	}
	if c.Tags.Immutable != "" {
		// A mirror's tags follow the upstream's, which may move them: held
		// still, they would refuse the mirror's own fills and every pull.
		v.fail("tags.immutable", "excludes proxy.remoteurl: a mirror's tags follow the upstream's")
	}
}

type validator struct {
	origin map[string]string
	errs   []error
}

func (v *validator) fail(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{Key: key, Source: v.origin[key], Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) hostPort(key, s string, optional bool) {
	if s == "" {
		if !optional {
			v.fail(key, "must be set, as host:port (e.g. :5000 or 127.0.0.1:5000)")
		}
		return
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		v.fail(key, "%q is not host:port (e.g. :5000 or 127.0.0.1:5000)", s)
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.fail(key, "%q: port %q is not a number from 0 to 65535", s, port)
	}
}

func (v *validator) oneOf(key, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.fail(key, "%q must be one of %s", s, strings.Join(allowed, ", "))
}

func (v *validator) positive(key string, d time.Duration) {
	if d <= 0 {
		v.fail(key, "%s must be greater than 0", formatDuration(d))
	}
}

func (v *validator) notNegative(key string, d time.Duration) {
	if d < 0 {
		v.fail(key, "%s must be 0 or more", formatDuration(d))
	}
}

// together reports a pair of settings of which only one is set.
func (v *validator) together(keyA, a, keyB, b string) {
	switch {
	case a != "" && b == "":
		v.fail(keyB, "must be set together with %s", keyA)
	case a == "" && b != "":
		v.fail(keyA, "must be set together with %s", keyB)
	}
}

// file checks now that a named file can be opened, so a typo in a path
// stops the start instead of failing the first request that needs it.
func (v *validator) file(key, path string) {
	if path == "" {
		return
	}
	info, err := os.Stat(path)
	if err != nil {
		v.fail(key, "cannot use %q: %v", path, unwrapPathError(err))
		return
	}
	if info.IsDir() {
		v.fail(key, "%q is a folder, not a file", path)
	}
}

func (v *validator) root(key, path string) {
	if path == "" {
		v.fail(key, "must be set: the folder holding registry data")
		return
	}
	if info, err := os.Stat(path); err == nil && !info.IsDir() {
		v.fail(key, "%q is a file, not a folder", path)
	}
}

func (v *validator) url(key, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Repeated with any password masked, or not at all when it does
		// not parse.
		if err != nil {
			v.fail(key, "is not an http:// or https:// URL")
		} else {
			v.fail(key, "%q is not an http:// or https:// URL", u.Redacted())
		}
	}
}

// bucketName follows S3's rules for bucket names, which every compatible
// server accepts.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func (v *validator) s3(s *S3) {
	switch {
	case s.Bucket == "":
		v.fail("storage.s3.bucket", "must be set when storage.driver is s3")
	case !bucketName.MatchString(s.Bucket):
		v.fail("storage.s3.bucket", "%q is not a bucket name (3 to 63 of a-z, 0-9, '.', '-')", s.Bucket)
	}
	v.url("storage.s3.endpoint", s.Endpoint)
	v.together("storage.s3.accesskey", s.AccessKey, "storage.s3.secretkey", string(s.SecretKey))
	v.oneOf("storage.s3.sse", s.SSE, "", "AES256", "aws:kms")
	if s.KMSKeyID != "" && s.SSE != "aws:kms" {
		v.fail("storage.s3.kmskeyid", "needs storage.s3.sse aws:kms")
	}
	if s.PartSize < 5<<20 || s.PartSize > 5<<30 {
		v.fail("storage.s3.partsize", "%s must be from 5MiB to 5GiB, the part sizes S3 allows", s.PartSize)
	}
	// SigV4 presigned URLs live at most a week.
	if s.RedirectExpiry <= 0 || s.RedirectExpiry > 7*24*time.Hour {
		v.fail("storage.s3.redirectexpiry", "%s must be greater than 0 and at most 168h", formatDuration(s.RedirectExpiry))
	}
}

func (v *validator) auth(a *Auth) {
	v.file("auth.htpasswd.path", a.Htpasswd.Path)
	v.file("auth.policy", a.Policy)
	if a.RateLimit.Burst < 1 {
		v.fail("auth.ratelimit.burst", "%d must be 1 or more", a.RateLimit.Burst)
	}
	v.positive("auth.ratelimit.per", a.RateLimit.Per)

	t := &a.Token
	v.url("auth.token.realm", t.Realm)
	v.url("auth.token.jwks", t.JWKS)
	v.file("auth.token.certbundle", t.CertBundle)
	v.file("auth.token.server.key", t.Server.Key)
	external := t.CertBundle != "" || t.JWKS != ""
	switch {
	case t.CertBundle != "" && t.JWKS != "":
		v.fail("auth.token.jwks", "excludes auth.token.certbundle: an external issuer's keys come from one of them")
	case t.Server.Enabled && external:
		v.fail("auth.token.server.enabled", "excludes auth.token.certbundle and auth.token.jwks: tokens come from this server or an external one")
	case external && t.Realm == "":
		v.fail("auth.token.realm", "must be set with an external token issuer (auth.token.certbundle or auth.token.jwks): it is where clients get tokens")
	case external && a.Htpasswd.Path != "":
		v.fail("auth.htpasswd.path", "has no use with an external token issuer: clients log in there")
	case !external && !t.Server.Enabled && t.Realm != "":
		v.fail("auth.token.realm", "is set but nothing verifies tokens: set auth.token.certbundle, auth.token.jwks or auth.token.server.enabled")
	}
	if t.Server.Enabled && t.Server.Expiry < minTokenExpiry {
		// Clients do not ask again within a pull or a push: a token
		// ending sooner fails the layers still to come.
		v.fail("auth.token.server.expiry", "%s is under the token specification's least lifetime, %s", formatDuration(t.Server.Expiry), formatDuration(minTokenExpiry))
	}
}

// minTokenExpiry is the least lifetime of an issued token: the Docker
// token specification's, "never ... less than 60 seconds to live".
const minTokenExpiry = time.Minute

// unwrapPathError drops the path an *os.PathError repeats, since the
// message already quotes it.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
