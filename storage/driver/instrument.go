package driver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Observer is told about every call through an instrumented driver: the
// operation ("GetContent", "Reader", "Writer.Write", ...), how long it took
// and its error. A not-found error is a normal outcome rather than a
// failure; IsNotFound tells the two apart.
type Observer func(op string, elapsed time.Duration, err error)

// Instrument wraps d so that every path is checked with ValidatePath before
// d sees it (an invalid one gets an InvalidPathError and never reaches d),
// and every call is reported to observe, which may be nil.
//
// The reader returned by Reader is always d's own, never wrapped: the
// filesystem driver returns an *os.File, and net/http reaches sendfile only
// through it. Only the opening of a reader is observed.
func Instrument(d Driver, observe Observer) Driver {
	return InstrumentTraced(d, observe, nil)
}

// InstrumentTraced is Instrument, and with tracer set each call made for
// a traced request is also a span ("storage.GetContent", ...) under the
// request's, naming the driver and the path.
func InstrumentTraced(d Driver, observe Observer, tracer trace.Tracer) Driver {
	return &instrumented{d: d, observe: observe, tracer: tracer}
}

type instrumented struct {
	d       Driver
	observe Observer
	tracer  trace.Tracer
}

// report is deferred with a pointer to the call's named error result, so it
// sees the error actually returned.
func (i *instrumented) report(op string, began time.Time, err *error) {
	if i.observe != nil {
		i.observe(op, time.Since(began), *err)
	}
}

// call is one observed call; a value, so that untraced calls cost what
// report does.
type call struct {
	i     *instrumented
	op    string
	began time.Time
	span  trace.Span
}

// begin starts observing op on path, and its span when tracing a
// request: background work (a collection, a probe) makes none, and would
// crowd the requests' spans out of the export.
func (i *instrumented) begin(ctx context.Context, op, path string) (context.Context, call) {
	c := call{i: i, op: op, began: time.Now()}
	if i.tracer != nil && trace.SpanFromContext(ctx).IsRecording() {
		ctx, c.span = i.tracer.Start(ctx, "storage."+op, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("lading.storage.driver", i.d.Name()), attribute.String("lading.storage.path", path)))
	}
	return ctx, c
}

// end is deferred with a pointer to the call's named error result. A
// path not found is an answer, not a failed span.
func (c call) end(err *error) {
	c.i.report(c.op, c.began, err)
	if c.span == nil {
		return
	}
	if e := *err; e != nil && !IsNotFound(e) && !errors.Is(e, ErrExists) {
		c.span.RecordError(e)
		c.span.SetStatus(codes.Error, e.Error())
	}
	c.span.End()
}

// check validates paths in the name of the wrapped driver.
func (i *instrumented) check(paths ...string) error {
	for _, p := range paths {
		err := ValidatePath(p)
		if ip, ok := err.(InvalidPathError); ok {
			ip.Driver = i.d.Name()
			return ip
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (i *instrumented) Name() string { return i.d.Name() }

func (i *instrumented) GetContent(ctx context.Context, path string) (content []byte, err error) {
	ctx, c := i.begin(ctx, "GetContent", path)
	defer c.end(&err)
	if err := i.check(path); err != nil {
		return nil, err
	}
	return i.d.GetContent(ctx, path)
}

func (i *instrumented) PutContent(ctx context.Context, path string, content []byte) (err error) {
	ctx, c := i.begin(ctx, "PutContent", path)
	defer c.end(&err)
	if err := i.check(path); err != nil {
		return err
	}
	return i.d.PutContent(ctx, path, content)
}

func (i *instrumented) PutState(ctx context.Context, path string, content []byte) (err error) {
	ctx, c := i.begin(ctx, "PutState", path)
	defer c.end(&err)
	if err := i.check(path); err != nil {
		return err
	}
	return i.d.PutState(ctx, path, content)
}

func (i *instrumented) Create(ctx context.Context, path string, content []byte) (err error) {
	ctx, c := i.begin(ctx, "Create", path)
	defer c.end(&err)
	if err := i.check(path); err != nil {
		return err
	}
	return i.d.Create(ctx, path, content)
}

func (i *instrumented) Reader(ctx context.Context, path string, offset int64) (r io.ReadCloser, err error) {
	ctx, c := i.begin(ctx, "Reader", path)
	defer c.end(&err)
	if err := i.check(path); err != nil {
		return nil, err
	}
	return i.d.Reader(ctx, path, offset)
}

func (i *instrumented) Writer(ctx context.Context, path string, append bool) (w FileWriter, err error) {
	ctx, c := i.begin(ctx, "Writer", path)
	defer c.end(&err)
	if err := i.check(path); err != nil {
		return nil, err
	}
	w, err = i.d.Writer(ctx, path, append)
	if err != nil || i.observe == nil && i.tracer == nil {
		return w, err
	}
	return &instrumentedWriter{w: w, i: i, path: path}, nil
}

func (i *instrumented) Stat(ctx context.Context, path string) (fi FileInfo, err error) {
	ctx, c := i.begin(ctx, "Stat", path)
	defer c.end(&err)
	if err := i.check(path); err != nil {
		return FileInfo{}, err
	}
	return i.d.Stat(ctx, path)
}

func (i *instrumented) List(ctx context.Context, path string) (children []string, err error) {
	ctx, c := i.begin(ctx, "List", path)
	defer c.end(&err)
	if err := i.check(path); err != nil {
		return nil, err
	}
	return i.d.List(ctx, path)
}

func (i *instrumented) Move(ctx context.Context, src, dst string) (err error) {
	ctx, c := i.begin(ctx, "Move", src)
	defer c.end(&err)
	if err := i.check(src, dst); err != nil {
		return err
	}
	return i.d.Move(ctx, src, dst)
}

func (i *instrumented) Delete(ctx context.Context, path string) (err error) {
	ctx, c := i.begin(ctx, "Delete", path)
	defer c.end(&err)
	if err := i.check(path); err != nil {
		return err
	}
	return i.d.Delete(ctx, path)
}

// Walk is observed as a whole, fn's time included: a walk's cost is the
// page it produces.
func (i *instrumented) Walk(ctx context.Context, path, from string, fn WalkFunc) (err error) {
	ctx, c := i.begin(ctx, "Walk", path)
	defer c.end(&err)
	if err := i.check(path); err != nil {
		return err
	}
	if from != "" {
		if err := i.check(from); err != nil {
			return err
		}
	}
	return i.d.Walk(ctx, path, from, fn)
}

func (i *instrumented) RedirectURL(r *http.Request, path string) (url string, err error) {
	_, c := i.begin(r.Context(), "RedirectURL", path)
	defer c.end(&err)
	if err := i.check(path); err != nil {
		return "", err
	}
	return i.d.RedirectURL(r, path)
}

type instrumentedWriter struct {
	w    FileWriter
	i    *instrumented
	path string
}

func (w *instrumentedWriter) Write(p []byte) (n int, err error) {
	defer w.i.report("Writer.Write", time.Now(), &err)
	return w.w.Write(p)
}

func (w *instrumentedWriter) Close() (err error) {
	defer w.i.report("Writer.Close", time.Now(), &err)
	return w.w.Close()
}

func (w *instrumentedWriter) Size() int64 { return w.w.Size() }

func (w *instrumentedWriter) Abandon() { Abandon(w.w) }

func (w *instrumentedWriter) Retract() error { return Retract(w.w) }

func (w *instrumentedWriter) Cancel(ctx context.Context) (err error) {
	ctx, c := w.i.begin(ctx, "Writer.Cancel", w.path)
	defer c.end(&err)
	return w.w.Cancel(ctx)
}

func (w *instrumentedWriter) Commit(ctx context.Context) (err error) {
	ctx, c := w.i.begin(ctx, "Writer.Commit", w.path)
	defer c.end(&err)
	return w.w.Commit(ctx)
}
