// Package config is Lading's one typed configuration: defaults, then a YAML
// file, then LADING_* environment variables, then command-line flags, each
// layer overriding the one before, and all of it validated before anything
// starts.
//
// Every key lives in exactly one place, the struct below; its yaml tag is its
// name in the file, the environment variable is derived from the same tag
// path (http.addr → LADING_HTTP_ADDR), and its doc tag is the line printed by
// Example. Adding a field is therefore enough to make it settable everywhere.
package config

import "time"

// Config is the whole of Lading's configuration.
type Config struct {
	HTTP          HTTP          `yaml:"http" doc:"The registry's listener."`
	Log           Log           `yaml:"log" doc:"Process and access logs, written to standard error."`
	Storage       Storage       `yaml:"storage" doc:"Where blobs, manifests and upload state live."`
	Redis         Redis         `yaml:"redis" doc:"Optional Redis shared by replicas for descriptor caching and locks."`
	Auth          Auth          `yaml:"auth" doc:"Who may pull, push and delete. With nothing set, everyone may do everything."`
	GC            GC            `yaml:"gc" doc:"Garbage collection while serving."`
	Uploads       Uploads       `yaml:"uploads" doc:"Resumable upload sessions."`
	ReadOnly      bool          `yaml:"readonly" doc:"Refuse every write with an OCI error while reads go on, e.g. during a migration."`
	Deletes       Deletes       `yaml:"deletes" doc:"Manifest, tag and blob deletion through the API."`
	Tags          Tags          `yaml:"tags" doc:"Rules on tags."`
	Proxy         Proxy         `yaml:"proxy" doc:"Run as a pull-through cache (a mirror) of an upstream registry: pulls fill from it, pushes and deletes are refused."`
	Notifications Notifications `yaml:"notifications" doc:"Events (a manifest or blob pushed, pulled, mounted, deleted) posted to HTTP endpoints, in CNCF Distribution's format."`
	Retention     Retention     `yaml:"retention" doc:"Tag retention rules that lading serve applies on a schedule, as lading prune does; the manifests the removed tags named are left untagged, for the collector (gc.untagged)."`
	Quotas        []Quota       `yaml:"quotas" doc:"Caps on the bytes repositories link (lading du's LINKED), a list; a repository is governed by the first rule that matches it, and one no rule matches has none. Each item takes repository (the access policy's patterns: team/*, team/**, which matches team too), limit (a size: 500GiB) and each (true: every repository the rule takes has the limit to itself; false, the default: the limit caps the total of them all). Past it, uploads and blobs new to the repository answer 403 DENIED; manifests are never refused. In the environment or --set, the whole list as YAML: [{repository: \"team-a/**\", limit: 500GiB}]."`
	Tracing       Tracing       `yaml:"tracing" doc:"OpenTelemetry traces of requests and of the storage calls they make, sent over OTLP/HTTP."`
}

// Tracing configures the export of traces.
type Tracing struct {
	Endpoint    string  `yaml:"endpoint" doc:"URL of an OTLP/HTTP receiver (an OpenTelemetry Collector, Jaeger, Tempo): http://otel-collector:4318, to which /v1/traces is added when it has no path; empty sends none. Spans go in OTLP's JSON encoding; the OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_CERTIFICATE and OTEL_SERVICE_NAME variables apply."`
	SampleRatio float64 `yaml:"sampleratio" doc:"Part of the requests traced, from 0 to 1, when the caller did not decide (a traceparent header from a traced caller is followed)."`
}

// HTTP configures the listener and its limits.
type HTTP struct {
	Addr              string        `yaml:"addr" doc:"host:port the registry listens on; an empty host means every interface."`
	TLS               TLS           `yaml:"tls" doc:"Serve HTTPS (and HTTP/2) when cert and key are set."`
	ReadHeaderTimeout time.Duration `yaml:"readheadertimeout" doc:"How long a client may take to send request headers; bounds slow-header attacks."`
	IdleTimeout       time.Duration `yaml:"idletimeout" doc:"How long an idle keep-alive connection is kept open; more than 0."`
	DrainTimeout      time.Duration `yaml:"draintimeout" doc:"On SIGTERM/SIGINT, how long in-flight requests may run before the process exits."`
	ShutdownDelay     time.Duration `yaml:"shutdowndelay" doc:"On SIGTERM/SIGINT, how long /readyz answers 503 while the registry still accepts connections, before the drain: time for a balancer (a Kubernetes Service) to stop sending any. 0: none."`
	DebugAddr         string        `yaml:"debugaddr" doc:"host:port of a separate listener for /metrics, /healthz and /readyz; empty serves them on addr."`
	Pprof             bool          `yaml:"pprof" doc:"Serve Go's runtime profiles (CPU, heap, goroutines) under /debug/pprof/ on the debugaddr listener, for diagnosing a slow or growing server; needs debugaddr, so they never reach the registry's own listener."`
	CORSOrigins       string        `yaml:"corsorigins" doc:"Comma-separated origins (https://ui.example.com) whose pages may call the API from a browser (a web interface on another host), with the user's saved login; * lets every origin, without it. Preflight OPTIONS are answered before authentication. Empty: none."`
	TrustedProxies    string        `yaml:"trustedproxies" doc:"Comma-separated addresses or CIDR ranges of the proxies in front of Lading (an ingress, a load balancer). From them the client's address is read in X-Forwarded-For, for the access log and the failed-login limit, which otherwise count every client behind a proxy as one, and the scheme the client used in X-Forwarded-Proto or Forwarded, for the URLs of notifications. Empty trusts none."`
	BodyIdleTimeout   time.Duration `yaml:"bodyidletimeout" doc:"How long a request body (an upload chunk, a manifest) may stall before the request fails with 408; the session keeps what arrived. A download is cut when its client takes less than 1 MiB (by sendfile) or 64 KiB (from buffers: TLS, HTTP/2, small bodies) in this long. 0 means no limit."`
	MaxUploads        int           `yaml:"maxuploads" doc:"Upload requests (PATCH/PUT bodies) served at once; 0 means no limit. Caps memory and disk bandwidth."`
	MaxManifestSize   Bytes         `yaml:"maxmanifestsize" doc:"Largest manifest accepted; larger ones get 413 without being read."`
	MaxBlobSize       Bytes         `yaml:"maxblobsize" doc:"Largest blob accepted (a layer, a config); larger ones get 413, read no further than the limit. 0 means no limit."`
}

// TLS holds the certificate files. Empty cert and key mean plain HTTP.
type TLS struct {
	Cert     string `yaml:"cert" doc:"PEM certificate chain file."`
	Key      string `yaml:"key" doc:"PEM private key file for cert."`
	ClientCA string `yaml:"clientca" doc:"PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)."`
}

// Log configures the process logger.
type Log struct {
	Level  string `yaml:"level" doc:"One of debug, info, warn, error."`
	Format string `yaml:"format" doc:"text for people, json for log pipelines."`
	Access bool   `yaml:"access" doc:"Write one line per request (method, route, repository, status, bytes, duration)."`
}

// Storage selects and configures the storage driver.
type Storage struct {
	Driver     string     `yaml:"driver" doc:"One of filesystem (one machine), inmemory (tests; lost on exit), s3 (replicas)."`
	Filesystem Filesystem `yaml:"filesystem" doc:"Settings of the filesystem driver."`
	S3         S3         `yaml:"s3" doc:"Settings of the s3 driver (AWS S3, Ceph RGW, SeaweedFS, MinIO, ...)."`
	// Bytes named by their digest never change, and a record is checked by
	// a stat, so replicas can each keep their own copy with nothing to
	// invalidate.
	ManifestCache Bytes `yaml:"manifestcache" doc:"Memory for manifest payloads and records kept in each process, so a pull reads the tag and stats the record; whether the repository holds the manifest is checked every time. 0 turns it off."`
}

// Filesystem configures the filesystem driver.
type Filesystem struct {
	Root string `yaml:"root" doc:"Folder holding all registry data; created if missing."`
}

// S3 configures the S3 driver.
type S3 struct {
	Endpoint       string        `yaml:"endpoint" doc:"http(s) URL of an S3-compatible server; empty means AWS."`
	Region         string        `yaml:"region" doc:"Bucket region; empty uses the SDK's default (AWS_REGION, shared config), or us-east-1 with an endpoint."`
	Bucket         string        `yaml:"bucket" doc:"Bucket holding the data; it must exist."`
	Prefix         string        `yaml:"prefix" doc:"Key prefix inside the bucket, so several registries can share one bucket."`
	ForcePathStyle bool          `yaml:"forcepathstyle" doc:"Address the bucket as endpoint/bucket instead of bucket.endpoint; most self-hosted servers need it."`
	AccessKey      string        `yaml:"accesskey" doc:"Static access key; empty uses the SDK's default credential chain (env, profile, instance role)."`
	SecretKey      Secret        `yaml:"secretkey" doc:"Static secret key, set together with accesskey. Never printed."`
	StorageClass   string        `yaml:"storageclass" doc:"Storage class for new objects, e.g. STANDARD_IA; empty uses the bucket's default."`
	SSE            string        `yaml:"sse" doc:"Server-side encryption: empty (bucket default), AES256 or aws:kms."`
	KMSKeyID       string        `yaml:"kmskeyid" doc:"KMS key for sse aws:kms; empty uses the account's default key."`
	PartSize       Bytes         `yaml:"partsize" doc:"Multipart part size, 5MiB to 5GiB: memory per upload in flight against request count."`
	Redirect       bool          `yaml:"redirect" doc:"Answer blob GETs with a 307 to a presigned URL so bytes bypass the registry."`
	RedirectExpiry time.Duration `yaml:"redirectexpiry" doc:"Lifetime of presigned redirect URLs."`
}

// Redis configures the optional shared cache.
type Redis struct {
	Addr     string `yaml:"addr" doc:"host:port of Redis; empty turns Redis off: blob links are not cached, and with s3 the upload locks live in the bucket."`
	Password Secret `yaml:"password" doc:"Redis AUTH password. Never printed."`
	DB       int    `yaml:"db" doc:"Redis database number."`
	Prefix   string `yaml:"prefix" doc:"Prefix of every key; registries sharing one Redis database need different ones. Empty: lading:."`
}

// Auth configures authentication and access control.
type Auth struct {
	Htpasswd  Htpasswd  `yaml:"htpasswd" doc:"Basic authentication."`
	Token     Token     `yaml:"token" doc:"Bearer token authentication (the Docker registry token protocol)."`
	Policy    string    `yaml:"policy" doc:"Access policy file (users and groups x repository globs x actions); empty lets any authenticated user do anything. Re-read when it changes."`
	RateLimit RateLimit `yaml:"ratelimit" doc:"Failed logins allowed per client address."`
}

// RateLimit slows password guessing: a token bucket per client address.
type RateLimit struct {
	Burst int           `yaml:"burst" doc:"Failed logins in a row before answers become 429."`
	Per   time.Duration `yaml:"per" doc:"One more failed login is allowed after each such interval."`
}

// Htpasswd configures basic authentication.
type Htpasswd struct {
	Path string `yaml:"path" doc:"htpasswd file with bcrypt hashes; empty turns basic authentication off. Re-read when it changes."`
}

// Token configures bearer tokens, verified here and optionally issued here.
type Token struct {
	Realm      string      `yaml:"realm" doc:"URL of the token server sent in the WWW-Authenticate challenge; empty with the built-in server means this registry's /auth/token."`
	Service    string      `yaml:"service" doc:"Service name sent in the challenge; empty means lading."`
	Issuer     string      `yaml:"issuer" doc:"Expected (or, built in, issued) iss claim; empty means the service name."`
	Audience   string      `yaml:"audience" doc:"Expected aud claim; empty means the service name."`
	CertBundle string      `yaml:"certbundle" doc:"PEM certificates or public keys of an external token issuer; excludes jwks."`
	JWKS       string      `yaml:"jwks" doc:"http(s) URL of an external issuer's JWK Set; excludes certbundle."`
	Server     TokenServer `yaml:"server" doc:"The built-in token server, so one binary is enough."`
}

// TokenServer configures the built-in token issuer.
type TokenServer struct {
	Enabled bool          `yaml:"enabled" doc:"Issue tokens at /auth/token from htpasswd users and the access policy; excludes certbundle and jwks."`
	Key     string        `yaml:"key" doc:"PEM private key (RSA, ECDSA or Ed25519) signing issued tokens; empty generates one at start, which replicas cannot share."`
	Expiry  time.Duration `yaml:"expiry" doc:"Lifetime of issued tokens, at least 1m (the token specification's least: clients do not ask again within a pull)."`
}

// GC configures the collector that runs inside lading serve.
type GC struct {
	Interval time.Duration `yaml:"interval" doc:"Time from the end of one collection (any replica's, or lading gc's) to the next; 0 turns scheduled collection off (lading gc still works)."`
	Grace    time.Duration `yaml:"grace" doc:"Blobs and untagged manifests younger than this are never collected, which protects pushes in flight."`
	Untagged bool          `yaml:"untagged" doc:"Also remove manifests no tag points to (and no kept index or subject references)."`
}

// Uploads configures upload sessions.
type Uploads struct {
	PurgeAge time.Duration `yaml:"purgeage" doc:"Upload sessions begun this long ago and not finished are removed, with their partial data."`
}

// Deletes configures deletion through the API.
type Deletes struct {
	Enabled bool `yaml:"enabled" doc:"Allow DELETE of manifests, tags and blobs; when false they answer 405 UNSUPPORTED (cancelling an upload stays allowed)."`
}

// Tags configures rules on tags.
type Tags struct {
	Immutable string `yaml:"immutable" doc:"Tags that never move once pushed, as comma-separated patterns: TAG in every repository (v*) or REPOSITORY:TAG (prod/**:release-*), with the access policy's repository patterns. A push moving one, its DELETE, and a DELETE by digest of the manifest it names answer 403 DENIED; pushing the same manifest again is allowed. Empty: none."`
}

// Proxy makes the registry a pull-through cache of one upstream registry.
type Proxy struct {
	RemoteURL  string        `yaml:"remoteurl" doc:"http(s) URL of the upstream registry, e.g. https://registry-1.docker.io; empty means this is no mirror."`
	Username   string        `yaml:"username" doc:"User name on the upstream; empty pulls anonymously."`
	Password   Secret        `yaml:"password" doc:"Password or access token of username on the upstream. Never printed."`
	TagTTL     time.Duration `yaml:"tagttl" doc:"How long a tag checked upstream is served without asking again; past it one HEAD upstream tells whether it moved. 0 asks on every pull."`
	EvictAfter time.Duration `yaml:"evictafter" doc:"Content not pulled from the mirror for this long is removed by the garbage collection (gc.interval, or lading gc with this configuration), and fetched again by the next pull of it: at least 1h, e.g. 30d. 0 keeps everything."`
}

// Default returns the configuration used when nothing is set: a registry on
// :5000 keeping everything under ./lading-data.
func Default() *Config {
	return &Config{
		HTTP: HTTP{
			Addr:              ":5000",
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			DrainTimeout:      30 * time.Second,
			// Each upload in progress holds a 1 MiB buffer and a backend
			// writer: 128 keeps both in the low hundreds of megabytes.
			MaxUploads:      128,
			BodyIdleTimeout: time.Minute,
			MaxManifestSize: 4 << 20,
		},
		Log: Log{Level: "info", Format: "text", Access: true},
		Storage: Storage{
			Driver:        "filesystem",
			Filesystem:    Filesystem{Root: "./lading-data"},
			ManifestCache: 32 << 20,
			S3: S3{
				PartSize:       16 << 20,
				RedirectExpiry: 20 * time.Minute,
			},
		},
		Auth: Auth{
			Token:     Token{Server: TokenServer{Expiry: 5 * time.Minute}},
			RateLimit: RateLimit{Burst: 10, Per: 6 * time.Second},
		},
		GC: GC{
			Interval: 24 * time.Hour,
			Grace:    24 * time.Hour,
		},
		Uploads: Uploads{PurgeAge: 7 * 24 * time.Hour},
		Deletes: Deletes{Enabled: true},
		// A minute bounds a mirror's HEADs to one per tag and replica a
		// minute, while a tag moved upstream is followed within one.
		Proxy:   Proxy{TagTTL: time.Minute},
		Tracing: Tracing{SampleRatio: 1},
	}
}
