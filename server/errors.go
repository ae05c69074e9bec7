package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/lading-registry/lading/auth"
	"github.com/lading-registry/lading/logging"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
)

// statusError is a registry error whose status the server decides rather
// than its code: an unknown route is a 404 whatever code explains it.
type statusError struct {
	status int
	err    *registry.Error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

func withStatus(status int, code registry.Code, format string, args ...any) error {
	return &statusError{status: status, err: &registry.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

func errNotFound(path string) error {
	return withStatus(http.StatusNotFound, registry.CodeUnsupported, "no endpoint at %q", path)
}

func errMethodNotAllowed(method string) error {
	return withStatus(http.StatusMethodNotAllowed, registry.CodeUnsupported, "method %s is not allowed here", method)
}

// statusClientClosed is the status logged for a request whose client went
// away before the answer (nginx's convention).
const statusClientClosed = 499

// codeStatus is the HTTP status of each error code, per the distribution
// specification where it names one.
var codeStatus = map[registry.Code]int{
	registry.CodeBlobUnknown:         http.StatusNotFound,
	registry.CodeBlobUploadUnknown:   http.StatusNotFound,
	registry.CodeManifestUnknown:     http.StatusNotFound,
	registry.CodeNameUnknown:         http.StatusNotFound,
	registry.CodeBlobUploadInvalid:   http.StatusBadRequest,
	registry.CodeDigestInvalid:       http.StatusBadRequest,
	registry.CodeManifestBlobUnknown: http.StatusBadRequest,
	registry.CodeManifestInvalid:     http.StatusBadRequest,
	registry.CodeNameInvalid:         http.StatusBadRequest,
	registry.CodeSizeInvalid:         http.StatusBadRequest,
	registry.CodeTagInvalid:          http.StatusBadRequest,
	registry.CodeManifestTooLarge:    http.StatusRequestEntityTooLarge,
	registry.CodeRangeInvalid:        http.StatusRequestedRangeNotSatisfiable,
	registry.CodeUnsupported:         http.StatusMethodNotAllowed,
	registry.CodeUnauthorized:        http.StatusUnauthorized,
	registry.CodeDenied:              http.StatusForbidden,
	registry.CodeTooManyRequests:     http.StatusTooManyRequests,
	registry.CodeUnavailable:         http.StatusServiceUnavailable,
}

// errorBody is the OCI error document.
type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    registry.Code `json:"code"`
	Message string        `json:"message"`
	Detail  any           `json:"detail,omitempty"`
}

// mapError is the one place an error becomes an HTTP answer: its status,
// the headers it implies, and the OCI error body. Errors that are not the
// client's to act on become 500 UNKNOWN with a generic message; the caller
// logs the real one.
func mapError(err error) (status int, header http.Header, body errorBody) {
	header = http.Header{}
	var rangeErr *registry.RangeError
	if errors.As(err, &rangeErr) {
		header.Set("Range", uploadRange(rangeErr.Offset))
		return http.StatusRequestedRangeNotSatisfiable, header, errorBody{Errors: []errorEntry{{
			Code: registry.CodeRangeInvalid, Message: rangeErr.Error(),
		}}}
	}
	var se *statusError
	if errors.As(err, &se) {
		return se.status, header, entry(se.err)
	}
	if ae, ok := auth.AsError(err); ok {
		ae.SetHeaders(header)
		return ae.Status, header, errorBody{Errors: []errorEntry{{Code: registry.Code(ae.Code), Message: ae.Message()}}}
	}
	e, ok := registry.AsError(err)
	if (!ok || codeStatus[e.Code] == 0) && driver.IsUnavailable(err) {
		// The storage is down or overloaded; the caller still logs the
		// real error.
		e, ok = &registry.Error{Code: registry.CodeUnavailable, Message: "storage unavailable, try again"}, true
	}
	if (!ok || codeStatus[e.Code] == 0) && driver.IsFull(err) {
		// Not the client's fault, but its to know: a retry works only
		// once space is freed.
		return http.StatusInsufficientStorage, header, errorBody{Errors: []errorEntry{{
			Code: registry.CodeUnknown, Message: "storage full: the registry has no room for this write",
		}}}
	}
	if ok {
		if status, known := codeStatus[e.Code]; known {
			if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
				// Clients retry these: upload slots and sessions free up as
				// fast as chunks finish. An error may know better (a
				// mirror's upstream that asked it to wait).
				wait := 1
				var ra interface{ RetryAfter() time.Duration }
				if errors.As(err, &ra) {
					wait = max(1, int((ra.RetryAfter()+time.Second-1)/time.Second))
				}
				header.Set("Retry-After", strconv.Itoa(wait))
			}
			return status, header, entry(e)
		}
	}
	return http.StatusInternalServerError, header, errorBody{Errors: []errorEntry{{
		Code: registry.CodeUnknown, Message: "internal server error",
	}}}
}

func entry(e *registry.Error) errorBody {
	msg := e.Message
	if msg == "" {
		msg = string(e.Code)
	}
	return errorBody{Errors: []errorEntry{{Code: e.Code, Message: msg, Detail: e.Detail}}}
}

// writeError answers the request with err. Server faults are logged with
// the real error; client mistakes at debug level only.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status := WriteError(w, r, err)
	if status >= 500 {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.EscapedPath(),
			"request_id", logging.RequestID(r.Context()), "error", err)
	} else {
		log.DebugContext(r.Context(), "request refused", "method", r.Method, "path", r.URL.EscapedPath(),
			"request_id", logging.RequestID(r.Context()), "status", status, "error", err)
	}
}

// WriteError answers the request with err as an OCI error response and
// returns the status sent. It is exported for Options.Middleware, so its
// refusals take the same shape as the server's own: a registry *Error, an
// *auth.Error (with its challenge), or anything else as a 500 the caller
// should log.
func WriteError(w http.ResponseWriter, r *http.Request, err error) int {
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		// The client hung up and the storage call gave up with it: no one
		// reads this answer, and logs and alerts must not count it as ours.
		err = withStatus(statusClientClosed, registry.CodeUnknown, "the client closed the request")
	}
	status, header, body := mapError(err)
	for k, v := range header {
		w.Header()[k] = v
	}
	payload, merr := json.Marshal(body)
	if merr != nil {
		// A Detail that cannot be encoded must not turn the answer into a 500.
		body.Errors[0].Detail = nil
		payload, _ = json.Marshal(body)
	}
	writeBody(w, r, status, "application/json", payload)
	return status
}
