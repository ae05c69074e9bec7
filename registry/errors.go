package registry

import (
	"errors"
	"fmt"
)

// Code is an error code from the OCI Distribution Specification's list (and a
// few of our own where the list has none). The HTTP layer maps codes to
// statuses in one place; the registry never speaks HTTP.
type Code string

const (
	CodeBlobUnknown         Code = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   Code = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   Code = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       Code = "DIGEST_INVALID"
	CodeManifestBlobUnknown Code = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     Code = "MANIFEST_INVALID"
	CodeManifestUnknown     Code = "MANIFEST_UNKNOWN"
	CodeNameInvalid         Code = "NAME_INVALID"
	CodeNameUnknown         Code = "NAME_UNKNOWN"
	CodeSizeInvalid         Code = "SIZE_INVALID"
	CodeUnauthorized        Code = "UNAUTHORIZED"
	CodeDenied              Code = "DENIED"
	CodeUnsupported         Code = "UNSUPPORTED"
	CodeTooManyRequests     Code = "TOOMANYREQUESTS"
	// CodeUnavailable is not in the OCI list; it is Distribution's name for
	// a 503, which clients retry.
	CodeUnavailable Code = "UNAVAILABLE"
	// Not in the spec's list, which has no code for these.
	CodeTagInvalid       Code = "TAG_INVALID"
	CodeManifestTooLarge Code = "MANIFEST_TOO_LARGE"
	CodeRangeInvalid     Code = "RANGE_INVALID"
	CodeUnknown          Code = "UNKNOWN"
)

// Error is a failure the client can act on: the registry's answer to a
// request that cannot be served as asked.
type Error struct {
	Code    Code
	Message string
	Detail  any
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// Is lets errors.Is match any *Error of the same code, so callers can test
// errors.Is(err, ErrBlobUnknown) whatever the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func newError(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinels for errors.Is; the errors returned carry specific messages.
var (
	ErrBlobUnknown         = &Error{Code: CodeBlobUnknown}
	ErrBlobUploadInvalid   = &Error{Code: CodeBlobUploadInvalid}
	ErrBlobUploadUnknown   = &Error{Code: CodeBlobUploadUnknown}
	ErrDenied              = &Error{Code: CodeDenied}
	ErrDigestInvalid       = &Error{Code: CodeDigestInvalid}
	ErrManifestBlobUnknown = &Error{Code: CodeManifestBlobUnknown}
	ErrManifestInvalid     = &Error{Code: CodeManifestInvalid}
	ErrManifestUnknown     = &Error{Code: CodeManifestUnknown}
	ErrManifestTooLarge    = &Error{Code: CodeManifestTooLarge}
	ErrNameInvalid         = &Error{Code: CodeNameInvalid}
	ErrNameUnknown         = &Error{Code: CodeNameUnknown}
	ErrSizeInvalid         = &Error{Code: CodeSizeInvalid}
	ErrTagInvalid          = &Error{Code: CodeTagInvalid}
	ErrUnsupported         = &Error{Code: CodeUnsupported}
)

// RangeError means an upload chunk did not start where the session stands,
// or another writer holds the session. Offset is the session's committed
// size: the client resumes from there.
type RangeError struct {
	Offset  int64
	Message string
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("upload range invalid (session at %d): %s", e.Offset, e.Message)
}

// AsError returns the *Error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
