package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lading-registry/lading/auth"
	"github.com/lading-registry/lading/cache"
	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/health"
	"github.com/lading-registry/lading/internal/gcfloor"
	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/internal/httpx"
	"github.com/lading-registry/lading/logging"
	"github.com/lading-registry/lading/metrics"
	"github.com/lading-registry/lading/notify"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/server"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
	"github.com/lading-registry/lading/storage/driver/inmemory"
	"github.com/lading-registry/lading/storage/driver/s3"
	"github.com/lading-registry/lading/tracing"
)

// maxHeaderBytes bounds request headers: registry requests carry a few
// short headers and at most a bearer token.
const maxHeaderBytes = 64 << 10

// accessFlushInterval bounds how long an access line waits in its batch.
const accessFlushInterval = 250 * time.Millisecond

// gcFloor is the heap below which the collector does not run (see
// gcfloor): a few milliseconds of requests' garbage under load, instead of
// Go's 4 MiB, which made it collect every 15 ms.
const gcFloor = 16 << 20

// linkCacheSize bounds the blob links a lone server keeps (about 260 bytes
// each).
const linkCacheSize = 64 << 10

func runServe(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("lading serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lading serve: unexpected arguments %q\n", fs.Args())
		return 2
	}
	cfg, err := config.Load("", os.Environ(), fs)
	if err == nil {
		err = checkAuth(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "lading serve: configuration:\n%v\n", err)
		return 2
	}
	log, err := logging.New(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintf(stderr, "lading serve: %v\n", err)
		return 2
	}
	var access *slog.Logger
	if cfg.Log.Access {
		// Access lines go out in batches, process lines at once.
		batched := logging.NewBuffered(stderr, accessFlushInterval)
		defer batched.Close()
		if access, err = logging.NewAccess(batched, cfg.Log.Level, cfg.Log.Format); err != nil {
			fmt.Fprintf(stderr, "lading serve: %v\n", err)
			return 2
		}
	}
	for _, k := range config.SecretsOnCommandLine(fs) {
		log.Warn("a secret was given with --set, where every local user can read it (ps, /proc); give it in the configuration file or the environment", "key", k, "env", config.EnvName(k))
	}
	var nofile syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile) == nil {
		warnFewFiles(log, nofile.Cur)
	}
	defer gcfloor.Start(gcFloor)()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Once the first signal starts the drain, a second one ends the
	// process at once, as an impatient operator expects.
	context.AfterFunc(ctx, stop)
	if err := serve(ctx, cfg, log, access, nil); err != nil {
		log.Error("lading serve failed", "error", err)
		return 1
	}
	return 0
}

// serve runs the registry until ctx ends, then drains in-flight requests
// for up to http.draintimeout. Access lines go to access, everything else
// to log. listening, when not nil, receives the address the registry
// listens on.
func serve(ctx context.Context, cfg *config.Config, log, access *slog.Logger, listening chan<- string) error {
	m := metrics.New()
	m.BuildInfo(buildVersion(), buildCommit(), runtime.Version())
	backend, err := openStorage(ctx, cfg.Storage)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if fsd, ok := backend.(*filesystem.Driver); ok && !cfg.ReadOnly {
		// A root another user owns would start, answer ready, and fail
		// every push with a 500.
		if err := fsd.CheckWritable(); err != nil {
			return fmt.Errorf("storage: %w (or set readonly)", err)
		}
	}
	if fsd, ok := backend.(*filesystem.Driver); ok && !fsd.Journaled() {
		log.Warn("storage.filesystem.root is on a file system without a journal: a power loss can lose files and need a manual fsck (docs/operations.md)", "root", cfg.Storage.Filesystem.Root)
	}
	tr, err := tracing.Start(ctx, tracing.Options{Endpoint: cfg.Tracing.Endpoint, SampleRatio: cfg.Tracing.SampleRatio, Version: buildVersion(), Logger: log})
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	// After the drain: the last requests' spans go too.
	defer func() {
		if err := tr.Shutdown(context.Background()); err != nil {
			log.Warn("tracing: spans not sent before the stop", "err", err)
		}
	}()
	drv := driver.InstrumentTraced(backend, m.DriverObserver(backend.Name()), tr.Tracer())
	if err := checkFormat(ctx, drv, !cfg.ReadOnly, log); err != nil {
		return fmt.Errorf("storage: %w", err)
	}

	// Validated with the configuration.
	immutable, _ := glob.ParseTagRules(cfg.Tags.Immutable)
	opts := registry.Options{
		ImmutableTags:     immutable,
		Logger:            log,
		MaxManifestSize:   int64(cfg.HTTP.MaxManifestSize),
		ManifestCacheSize: int64(cfg.Storage.ManifestCache),
		CacheObserver:     m.CacheObserver("links"),
		UploadObserver:    m.UploadObserver(),
	}
	if len(cfg.Quotas) > 0 {
		quotaOptions(cfg.Quotas, m.Quotas(), &opts)
	}
	var lockFellBack func()
	if cfg.Redis.Addr != "" {
		lockFellBack, opts.CacheFailed = m.RedisFallback("lock"), m.RedisFallback("cache")
	}
	rc, locker := sharedLocks(ctx, cfg, drv, log, lockFellBack)
	opts.Locker = locker
	switch {
	case rc != nil:
		defer rc.Close()
		opts.Cache = rc
	case locker != nil:
		// Replicas share the bucket and nothing else: locks live in it, and
		// links are not cached, since another replica's delete would not
		// reach a private cache (storage.manifestcache needs no such
		// invalidation).
	case !cfg.ReadOnly:
		// One process serves the root: tags are its alone to write, and
		// links its alone to remove but for a `lading gc` or fsck beside
		// it, whose changes a second's trust lets it see. (A read-only
		// server may be a mirror another process fills: it keeps none.)
		// The root is claimed for as long as this process serves it, so a
		// second server on it stops at once instead of writing beside it.
		if fsd, ok := backend.(*filesystem.Driver); ok {
			release, err := fsd.Claim()
			switch {
			case errors.Is(err, filesystem.ErrUnclaimable):
				log.Warn("storage.filesystem.root cannot be locked: make sure no other lading serve writes it", "root", cfg.Storage.Filesystem.Root, "error", err)
			case errors.Is(err, filesystem.ErrClaimed):
				return fmt.Errorf("storage.filesystem.root %s: %w: one lading serve per root (lading gc and fsck may run beside it; replicas share S3)", cfg.Storage.Filesystem.Root, err)
			case err != nil:
				return fmt.Errorf("storage.filesystem.root %s: claiming it for this server: %w", cfg.Storage.Filesystem.Root, err)
			default:
				defer release()
			}
		}
		opts.SoleServer = true
		opts.Cache = cache.NewMemory(linkCacheSize, time.Second)
	}
	reg := registry.New(drv, opts)
	if len(opts.Quotas) > 0 {
		// The usage of each rule capping a total, for its metric and for
		// the first push, which would otherwise wait for the count.
		go func() {
			if err := reg.CountQuotas(ctx); err != nil && ctx.Err() == nil {
				log.Warn("quota: counting usage at the start failed; the first push counts again", "err", err)
			}
		}()
	}
	// What the last collection left stored, any replica's, from the
	// start: the schedule reads it again at each look.
	storedSeen := func(s registry.GCStored) { m.GCStored(int64(s.Blobs), s.Bytes, s.At) }
	sctx, cancelStored := context.WithTimeout(ctx, 10*time.Second)
	if s, ok, err := reg.LastStored(sctx); err == nil && ok {
		storedSeen(s)
	}
	cancelStored()
	// Collection, upload purging and the retention rules run beside
	// serving; with replicas, leases in the backend let one replica at a
	// time do each. Not on a read-only server: it writes nothing, while
	// another process may be filling or copying the storage. On a stop, a collection ends
	// (telling writers it is over) before the process does.
	maintained := make(chan struct{})
	// A return before the stop (a listener that cannot bind) ends it too.
	mctx, stopMaintaining := context.WithCancel(ctx)
	defer stopMaintaining()
	if cfg.ReadOnly {
		close(maintained)
	} else {
		maintenance := registry.Maintenance{
			GCInterval: cfg.GC.Interval,
			GC:         registry.GCOptions{Grace: cfg.GC.Grace, DeleteUntagged: cfg.GC.Untagged, Unpulled: unpulled(cfg)},
			PurgeAge:   cfg.Uploads.PurgeAge,
			Collected: func(rep registry.GCReport) {
				m.GCRun(int64(rep.TagsEvicted), int64(rep.BlobsRemoved), rep.BytesReclaimed)
				storedSeen(rep.Stored)
			},
			StoredSeen: storedSeen,
			Failed:     m.MaintenanceFailed,
		}
		if cfg.Retention.Interval > 0 {
			maintenance.RetentionInterval = cfg.Retention.Interval
			maintenance.Retention = retentionOptions(cfg.Retention)
			rm := m.Retention()
			maintenance.Retained = retained(rm)
			// Any replica's last success, so that a restart does not
			// read as retention never having run.
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if t, err := reg.RetentionLastSuccess(lctx); err == nil && !t.IsZero() {
				rm.SetLastSuccess(t)
			}
			cancel()
			if !cfg.GC.Untagged || cfg.GC.Interval == 0 {
				log.Info("retention: the manifests whose tags the rules remove stay, untagged, until a collection with gc.untagged (or lading gc --untagged) takes them")
			}
		}
		if unpulled(cfg) > 0 && cfg.GC.Interval == 0 {
			log.Info("proxy.evictafter: pulls are noted, and what is not pulled goes at a collection (gc.interval, or lading gc with this configuration)")
		}
		go func() {
			defer close(maintained)
			reg.Maintain(mctx, maintenance)
		}()
	}

	az, err := auth.New(authConfig(cfg.Auth), log)
	if err != nil {
		return err
	}
	for key, stale := range az.Stale {
		m.FileStale(key, stale)
	}
	var authorizer auth.Authorizer
	if _, open := az.Authorizer.(auth.Open); !open {
		authorizer = az.Authorizer
		if _, ok := backend.(*filesystem.Driver); ok {
			warnOpenRoot(log, cfg.Storage.Filesystem.Root)
		}
	}
	mirror, closeMirror, err := newMirror(cfg.Proxy, reg, log, m, tr)
	if err != nil {
		return err
	}
	defer closeMirror() // the pulls' notes being written
	events := notifier(cfg, log)
	// Also on a return before the stop; then nothing waits to be sent.
	defer events.Close(context.Background())
	m.Notifications(notificationStats(events))
	api := server.New(reg, server.Options{
		Logger:          log,
		DisableDeletes:  !cfg.Deletes.Enabled,
		ReadOnly:        cfg.ReadOnly,
		MaxUploads:      noLimitIfZero(cfg.HTTP.MaxUploads),
		MaxBlobSize:     int64(cfg.HTTP.MaxBlobSize),
		BodyIdleTimeout: noLimitIfZero(cfg.HTTP.BodyIdleTimeout),
		Authorizer:      authorizer,
		Mirror:          mirror,
		Events:          events,
	})
	var handler http.Handler = az.Handler(api)
	// Validated with the configuration. Outside authentication: a
	// browser's preflight carries no credentials.
	origins, _ := httpx.ParseOrigins(cfg.HTTP.CORSOrigins)
	handler = server.CORS(origins, handler)
	labels := routeLabels(az.TokenServer != nil)
	handler = m.Instrument(handler, labels)
	if cfg.Log.Access {
		handler = logging.AccessLog(access, handler, labels)
	}
	handler = tr.Handler(handler, labels)

	fsd, _ := backend.(*filesystem.Driver)
	ops := opsHandler(m, readiness(ctx, drv, fsd), ctx.Done(), log)
	if cfg.HTTP.DebugAddr == "" {
		handler = withOps(ops, handler)
	}
	// Validated with the configuration.
	proxies, _ := httpx.ParseProxies(cfg.HTTP.TrustedProxies)
	handler = httpx.ForwardedClient(proxies, handler)
	handler = server.BoundBodies(cfg.HTTP.BodyIdleTimeout, handler)
	if cfg.HTTP.ShutdownDelay > 0 {
		handler = closeWhenStopping(ctx.Done(), handler)
	}
	var running runningHandlers
	handler = running.track(handler)
	tlsConfig, err := cfg.HTTP.TLS.ServerConfig(log)
	if err != nil {
		return err
	}
	if tlsConfig != nil {
		m.CertificateExpiry(func() (time.Time, bool) {
			c, err := tlsConfig.GetCertificate(&tls.ClientHelloInfo{})
			if err != nil || c == nil || c.Leaf == nil {
				return time.Time{}, false
			}
			return c.Leaf.NotAfter, true
		})
	}
	srv := newHTTPServer(cfg, handler, tlsConfig, log)
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}
	servers := []*http.Server{srv}
	served := make(chan error, 2)
	if cfg.HTTP.DebugAddr != "" {
		dln, err := net.Listen("tcp", cfg.HTTP.DebugAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("http.debugaddr: %w", err)
		}
		debug := ops
		if cfg.HTTP.Pprof {
			debug = withPprof(ops)
		}
		dsrv := newHTTPServer(cfg, debug, nil, log)
		servers = append(servers, dsrv)
		go func() { served <- dsrv.Serve(dln) }()
		log.Info("debug listener", "addr", dln.Addr().String())
	}
	log.Info("lading serving", "addr", ln.Addr().String(), "tls", tlsConfig != nil, "storage", backend.Name(), "auth", authorizer != nil, "version", buildVersion())
	go func() {
		if tlsConfig != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	if listening != nil {
		listening <- ln.Addr().String()
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	if d := cfg.HTTP.ShutdownDelay; d > 0 {
		// Not ready, still serving: a balancer that polls /readyz, or a
		// Kubernetes Service whose endpoints change, stops sending new
		// connections before the listener closes and refuses them.
		log.Info("stopping: not ready, still accepting", "delay", d)
		time.Sleep(d)
	}
	log.Info("shutting down", "drain", cfg.HTTP.DrainTimeout)
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.DrainTimeout)
	defer cancel()
	var errs []error
	for i, s := range servers {
		if i > 0 {
			// The debug listener, once the registry's requests are done:
			// what it serves (a scrape, a profile of many seconds) need
			// not hold up the stop.
			dctx, cancel := context.WithTimeout(drainCtx, time.Second)
			if s.Shutdown(dctx) != nil {
				s.Close()
			}
			cancel()
			continue
		}
		err := s.Shutdown(drainCtx)
		if errors.Is(err, context.DeadlineExceeded) {
			// The stop asked for has happened, on time: not a failure of
			// the process, so it still exits 0. The requests cut are the
			// operator's to know about.
			log.Warn("drain timeout reached: closing connections with requests still in flight", "drain", cfg.HTTP.DrainTimeout)
			err = s.Close()
			// A handler whose connection just closed returns at its next
			// read; waiting for it lets an upload record the bytes it
			// received, so its client can resume there.
			if !running.wait(cutGrace) {
				log.Warn("requests still running after their connections closed", "waited", cutGrace)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
	}
	// What the requests did is sent in what is left of the drain's time
	// (http.draintimeout from the stop), then dropped.
	if dropped := events.Close(drainCtx); dropped > 0 {
		log.Warn("notification events not delivered before the stop were dropped", "events", dropped)
	}
	select {
	case <-maintained:
	case <-time.After(cutGrace):
		log.Warn("a collection, purge or retention run was still ending; fsck reports a collection left running", "waited", cutGrace)
	}
	return errors.Join(errs...)
}

// notifier starts the senders of the notification endpoints not
// disabled; nil when there are none.
func notifier(cfg *config.Config, log *slog.Logger) *notify.Notifier {
	var endpoints []notify.EndpointConfig
	for _, e := range cfg.Notifications.Endpoints {
		if e.Disabled {
			continue
		}
		headers := http.Header{}
		for k, vs := range e.Headers {
			for _, v := range vs {
				headers.Add(k, v.Reveal())
			}
		}
		endpoints = append(endpoints, notify.EndpointConfig{
			Name:              e.Name,
			URL:               e.URL.Reveal(),
			Headers:           headers,
			Timeout:           e.Timeout,
			Backoff:           e.Backoff,
			MaxBackoff:        e.MaxBackoff,
			MaxQueue:          e.MaxQueue,
			MaxBatch:          e.MaxBatch,
			IgnoredMediaTypes: append(slices.Clone(e.IgnoredMediaTypes), e.Ignore.MediaTypes...),
			IgnoredActions:    e.Ignore.Actions,
		})
	}
	// The source names this process as Distribution's does: its host
	// name and the port it serves.
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(cfg.HTTP.Addr)
	return notify.New(endpoints, net.JoinHostPort(host, port), log)
}

// notificationStats reads the endpoints' counts for the metrics.
func notificationStats(events *notify.Notifier) func() []metrics.NotificationStats {
	return func() []metrics.NotificationStats {
		var out []metrics.NotificationStats
		for _, s := range events.Stats() {
			out = append(out, metrics.NotificationStats{Endpoint: s.Name, Delivered: s.Delivered, Failed: s.Failed, Dropped: s.Dropped, Queued: s.Queued, LastSuccess: s.LastSuccess})
		}
		return out
	}
}

// closeWhenStopping makes every answer given once stopping is closed end
// its connection: "Connection: close" on HTTP/1.1, a GOAWAY on HTTP/2. So
// during http.shutdowndelay clients move to new connections, which the
// balancer sends elsewhere, while this process still answers. A keep-alive
// connection left open is closed by the drain, and a request its client is
// sending at that moment is lost (net/http serves none that arrives once
// the drain began); clients retry only GETs and HEADs.
func closeWhenStopping(stopping <-chan struct{}, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stopping:
			w.Header().Set("Connection", "close")
		default:
		}
		next.ServeHTTP(w, r)
	})
}

// cutGrace bounds the wait for handlers after the drain timeout closed
// their connections.
const cutGrace = 5 * time.Second

// runningHandlers counts the registry's requests being handled.
type runningHandlers struct{ n atomic.Int64 }

func (r *runningHandlers) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.n.Add(1)
		defer r.n.Add(-1)
		next.ServeHTTP(w, req)
	})
}

// wait reports whether every handler returned within timeout.
func (r *runningHandlers) wait(timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); r.n.Load() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

func newHTTPServer(cfg *config.Config, h http.Handler, tlsConfig *tls.Config, log *slog.Logger) *http.Server {
	var unused unusedConns
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnState:         unused.track,
	}
	// HTTP/2 flow control lets a client send only as much as the server
	// has room for: Go's default of 1 MiB for a connection caps a push at
	// 1 MiB per round trip (about 50 MB/s at 20 ms), however many layers
	// share the connection. The room holds bytes that arrived and were not
	// read yet, so it is also what a client can pin for up to
	// http.bodyidletimeout: 8 MiB per connection. At 20 ms, windows of 8
	// and 32 MiB pushed one blob a third faster and three no faster.
	srv.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerConnection: h2ConnWindow, MaxReceiveBufferPerStream: h2StreamWindow}
	srv.RegisterOnShutdown(unused.close)
	return srv
}

// h2ConnWindow and h2StreamWindow are the HTTP/2 receive windows of a
// connection and of each of its streams (see newHTTPServer).
const (
	h2ConnWindow   = 8 << 20
	h2StreamWindow = 4 << 20
)

// unusedConns are connections on which no request has begun. Shutdown
// waits up to 5s for each before counting it idle, and clients leave such
// connections behind routinely (a transport dials for a request another
// connection then serves; go-containerregistry races HTTPS against HTTP),
// so without this a drain with nothing in flight could take 5s. Closing
// one is no worse than the reset its client would get from the closed
// listener a moment later.
type unusedConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (u *unusedConns) track(c net.Conn, state http.ConnState) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if state != http.StateNew {
		delete(u.conns, c)
		return
	}
	if u.conns == nil {
		u.conns = map[net.Conn]struct{}{}
	}
	u.conns[c] = struct{}{}
}

func (u *unusedConns) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for c := range u.conns {
		c.Close()
	}
}

// opsHandler serves what operators and orchestrators poll: metrics,
// liveness and readiness.
func opsHandler(m *metrics.Metrics, ready func(context.Context) error, draining <-chan struct{}, log *slog.Logger) http.Handler {
	metricsH, live, readyH := m.Handler(), health.Live(), health.Ready(ready, draining, log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			metricsH.ServeHTTP(w, r)
		case "/healthz":
			live.ServeHTTP(w, r)
		case "/readyz":
			readyH.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// withPprof adds Go's profiles under /debug/pprof/ to the debug listener's
// handler.
func withPprof(ops http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", ops)
	return mux
}

// errDraining makes /readyz fail once shutdown begins: with a debug
// listener, which outlives the registry's own, balancers see the instance
// leave before its in-flight requests end.
var errDraining = errors.New("shutting down")

// readiness is the /readyz check: storage answers and no shutdown began.
// root, when not nil, is the filesystem driver, whose root must still be
// the one it opened: it cannot tell an empty store from a missing one.
func readiness(ctx context.Context, d driver.Driver, root *filesystem.Driver) func(context.Context) error {
	storage := health.Storage(d)
	return func(c context.Context) error {
		if ctx.Err() != nil {
			return errDraining
		}
		if root != nil {
			if err := root.RootPresent(); err != nil {
				return err
			}
		}
		return storage(c)
	}
}

// withOps answers the operational paths on the registry's own listener.
// Not a ServeMux: its path cleaning would redirect registry requests.
func withOps(ops, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics", "/healthz", "/readyz":
			ops.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// checkFormat refuses a store of another format (registry.CheckFormat).
// A storage that fails to answer only warns: the server starts and /readyz
// tells, as it did before the check.
func checkFormat(ctx context.Context, drv driver.Driver, write bool, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := registry.CheckFormat(cctx, drv, write)
	if err != nil && !errors.Is(err, registry.ErrFormat) {
		log.Warn("the store's format marker could not be read or written; serving without the check", "error", err)
		return nil
	}
	return err
}

// openStorage builds the configured backend, without decoration.
func openStorage(ctx context.Context, cfg config.Storage) (driver.Driver, error) {
	switch cfg.Driver {
	case "inmemory":
		return inmemory.New(), nil
	case "s3":
		c := cfg.S3
		return s3.New(ctx, s3.Config{
			Endpoint:             c.Endpoint,
			Region:               c.Region,
			Bucket:               c.Bucket,
			Prefix:               c.Prefix,
			ForcePathStyle:       c.ForcePathStyle,
			AccessKey:            c.AccessKey,
			SecretKey:            c.SecretKey.Reveal(),
			StorageClass:         c.StorageClass,
			ServerSideEncryption: c.SSE,
			KMSKeyID:             c.KMSKeyID,
			PartSize:             int64(c.PartSize),
			Redirect:             s3.RedirectConfig{Expiry: redirectExpiry(c)},
		})
	}
	return filesystem.New(cfg.Filesystem.Root)
}

// noLimitIfZero maps the config's "0 means no limit" to the server's
// negative, where 0 means its default.
func noLimitIfZero[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// sharedLocks returns the Locker that the servers of cfg's store and the
// commands beside them (gc, fsck) share, with the Redis client when one is
// configured, which the caller closes: Redis, falling back to leases in the
// store; leases in the bucket on S3; nil (each process its own) otherwise.
//
// A Redis that does not answer at start is logged, not fatal: locks fall
// back to the store and nothing is cached until it answers, but a wrong
// password or address would otherwise go unnoticed.
func sharedLocks(ctx context.Context, cfg *config.Config, drv driver.Driver, log *slog.Logger, fellBack func()) (*cache.Redis, registry.Locker) {
	switch {
	case cfg.Redis.Addr != "":
		rc := newRedis(cfg.Redis, log)
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := rc.Ping(pctx); err != nil {
			log.Warn("redis does not answer: locks are taken in the store and nothing is cached in Redis until it does", "addr", cfg.Redis.Addr, "error", err)
		}
		return rc, registry.NewFallbackLocker(rc, registry.NewBackendLocker(drv, 0), log, fellBack)
	case cfg.Storage.Driver == "s3":
		return nil, registry.NewBackendLocker(drv, 0)
	}
	return nil, nil
}

// newRedis connects to the Redis the configuration names.
func newRedis(c config.Redis, log *slog.Logger) *cache.Redis {
	return cache.NewRedis(cache.RedisOptions{Addr: c.Addr, Password: c.Password.Reveal(), DB: c.DB, Prefix: c.Prefix, Logger: log})
}

func redirectExpiry(c config.S3) time.Duration {
	if !c.Redirect {
		return 0
	}
	return c.RedirectExpiry
}

// routeLabels names a request's route for the metrics and the access log:
// the registry API's, and with the built-in token server its two routes,
// so that logins, failed ones included, are told apart from paths that
// name nothing.
func routeLabels(tokenServer bool) func(*http.Request) (string, string) {
	return func(r *http.Request) (string, string) {
		if tokenServer {
			switch r.URL.Path {
			case auth.TokenPath:
				return "token", ""
			case auth.JWKSPath:
				return "jwks", ""
			}
		}
		return server.RouteLabels(r)
	}
}

// checkAuth reads and parses the files the auth section names (htpasswd,
// policy, token key, certificate bundle), which config.Load only finds:
// a broken one is a mistake in the configuration, refused before anything
// is started or written, by serve as by `lading config check`.
func checkAuth(cfg *config.Config) error {
	_, err := auth.New(authConfig(cfg.Auth), slog.New(slog.DiscardHandler))
	return err
}

// authConfig carries the auth section over; the two share their key names.
func authConfig(c config.Auth) auth.Config {
	return auth.Config{
		Htpasswd: auth.HtpasswdConfig{Path: c.Htpasswd.Path},
		Policy:   c.Policy,
		Token: auth.TokenConfig{
			Realm:      c.Token.Realm,
			Service:    c.Token.Service,
			Issuer:     c.Token.Issuer,
			Audience:   c.Token.Audience,
			CertBundle: c.Token.CertBundle,
			JWKS:       c.Token.JWKS,
			Server:     auth.TokenServerConfig{Enabled: c.Token.Server.Enabled, Key: c.Token.Server.Key, Expiry: c.Token.Server.Expiry},
		},
		RateLimit: auth.RateLimitConfig{Burst: c.RateLimit.Burst, Per: c.RateLimit.Per},
	}
}

// fewFiles is the open-file limit below which serve warns at start. Go
// raises the soft limit to the hard one itself, so only a low hard limit
// (a container's, a service manager's) is seen here.
const fewFiles = 4096

func warnFewFiles(log *slog.Logger, limit uint64) {
	if limit < fewFiles {
		log.Warn("the open-file limit is low: each connection and each blob read or written takes one, and past it requests are answered 503 and new connections wait; raise it (ulimit -n, systemd LimitNOFILE=)", "limit", limit, "want", fewFiles)
	}
}

// warnOpenRoot warns when other local users may enter the storage root:
// the files below it are readable by all (a root Lading makes is closed,
// one that existed keeps its mode), so access control on the API would not
// keep them from private images on the disk.
func warnOpenRoot(log *slog.Logger, root string) {
	fi, err := os.Stat(root)
	if err == nil && fi.Mode().Perm()&0o001 != 0 {
		log.Warn("storage.filesystem.root can be entered by every local user, who can then read every image on disk whatever auth allows; close it (chmod o-rwx)", "root", root, "mode", fmt.Sprintf("%#o", fi.Mode().Perm()))
	}
}
