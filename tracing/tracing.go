// Package tracing sends OpenTelemetry traces over OTLP/HTTP: a span for
// each request (from internal/httpx's route labels) and, through the
// storage driver's decorator, one for each storage call it makes, so a
// slow pull shows which backend call it waited on.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/lading-registry/lading/internal/httpx"
	"github.com/lading-registry/lading/logging"
)

// Tracing is a started export of traces; the zero value traces nothing.
type Tracing struct {
	provider *sdktrace.TracerProvider
}

// Options configure Start.
type Options struct {
	// Endpoint is the OTLP/HTTP receiver's URL; /v1/traces is added
	// when it has no path.
	Endpoint string
	// SampleRatio is the part of the traces begun here that are kept.
	SampleRatio float64
	// Version is the build's, reported as service.version.
	Version string
	// Logger hears of failed exports, at most once a minute; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Start begins exporting; with no endpoint it returns the zero Tracing.
// Spans go out in batches, off the requests' path; a receiver that is
// down loses them, never delays a request.
func Start(ctx context.Context, opts Options) (*Tracing, error) {
	if opts.Endpoint == "" {
		return &Tracing{}, nil
	}
	endpoint, err := url.Parse(opts.Endpoint)
	if err != nil {
		return nil, err
	}
	if endpoint.Path == "" || endpoint.Path == "/" {
		endpoint.Path = "/v1/traces"
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	// The library's own errors (a receiver down: at every batch) go to
	// the process log in its format, not to the standard logger.
	var warned logging.EveryMinute
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		if warned.Allow() {
			log.Warn("tracing: spans not exported", "err", err)
		}
	}))
	exporter, err := newOTLPJSON(endpoint.String())
	if err != nil {
		return nil, err
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override these.
	res, err := resource.Merge(resource.NewSchemaless(semconv.ServiceName("lading"), semconv.ServiceVersion(opts.Version)),
		resource.Environment())
	if err != nil {
		return nil, err
	}
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(opts.SampleRatio))),
	)
	return &Tracing{provider: provider}, nil
}

// Tracer returns the tracer for storage calls, nil when not tracing.
func (t *Tracing) Tracer() trace.Tracer {
	if t.provider == nil {
		return nil
	}
	return t.provider.Tracer("github.com/lading-registry/lading")
}

// propagator reads and writes W3C traceparent and baggage headers.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Handler wraps next in a server span per request, continuing the
// caller's trace (a traceparent header), named once next has answered by
// the method and the route ("GET blob"), with the repository and the user;
// info names the route of a request nothing inside labelled (see
// httpx.Label). Unchanged when not tracing.
func (t *Tracing) Handler(next http.Handler, info func(*http.Request) (route, repo string)) http.Handler {
	if t.provider == nil {
		return next
	}
	named := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l, r := httpx.WithLabels(r)
		// Deferred: a download cut short by a panic (http.ErrAbortHandler)
		// is named too, and marked.
		defer func() {
			l.Resolve(r, info)
			span := trace.SpanFromContext(r.Context())
			span.SetName(r.Method + " " + l.Route)
			span.SetAttributes(semconv.HTTPRoute(l.Route), attribute.String("lading.repository", l.Repository))
			if l.User != "" {
				span.SetAttributes(attribute.String("enduser.id", l.User))
			}
			if p := recover(); p != nil {
				span.SetStatus(codes.Error, fmt.Sprint(p))
				panic(p)
			}
		}()
		next.ServeHTTP(w, r)
	})
	return otelhttp.NewHandler(named, "request",
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(propagator),
	)
}

// Transport wraps base (http.DefaultTransport when nil) in a client span
// per request that carries the trace to the server called (a mirror's
// upstream): the W3C traceparent only, never a caller's baggage, and the
// URL without its query, which may hold a presigned URL's signature.
// Unchanged when not tracing.
func (t *Tracing) Transport(base http.RoundTripper) http.RoundTripper {
	if t.provider == nil {
		return base
	}
	if base == nil {
		base = http.DefaultTransport
	}
	return &tracedTransport{base: base, tracer: t.provider.Tracer("github.com/lading-registry/lading")}
}

type tracedTransport struct {
	base   http.RoundTripper
	tracer trace.Tracer
}

func (t *tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if !trace.SpanFromContext(ctx).IsRecording() {
		return t.base.RoundTrip(req) // background work, or a request not sampled
	}
	u := *req.URL
	u.RawQuery, u.ForceQuery, u.Fragment, u.User = "", false, "", nil
	ctx, span := t.tracer.Start(ctx, req.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(req.Method), semconv.URLFull(u.String()), semconv.ServerAddress(req.URL.Hostname())))
	defer span.End()
	req = req.Clone(ctx)
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return resp, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, resp.Status)
	}
	return resp, nil
}

// Shutdown sends the spans still held, within ctx.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.provider == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return t.provider.Shutdown(ctx)
}
