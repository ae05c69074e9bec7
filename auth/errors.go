package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Reasons a request is refused; match them with errors.Is on an *Error.
var (
	ErrNoCredentials     = errors.New("no credentials")
	ErrBadCredentials    = errors.New("invalid username or password")
	ErrTooManyAttempts   = errors.New("too many failed login attempts")
	ErrDenied            = errors.New("access denied")
	ErrInsufficientScope = errors.New("token does not grant the access needed")
	ErrTokenMalformed    = errors.New("token malformed")
	ErrTokenSignature    = errors.New("token signature invalid or key unknown")
	ErrTokenExpired      = errors.New("token expired")
	ErrTokenNotYetValid  = errors.New("token not yet valid")
	ErrTokenAudience     = errors.New("token audience is not this service")
	ErrTokenIssuer       = errors.New("token issuer not trusted")
)

// Error codes, as in the OCI Distribution Specification's list.
const (
	CodeUnauthorized    = "UNAUTHORIZED"
	CodeDenied          = "DENIED"
	CodeTooManyRequests = "TOOMANYREQUESTS"
)

// Error is a refusal the HTTP layer turns into a response: Status and Code
// for the OCI error body, Challenge for WWW-Authenticate (401 only) and
// RetryAfter for 429. Reason is one of the Err* values above.
type Error struct {
	Status     int
	Code       string
	Challenge  string
	RetryAfter time.Duration
	Reason     error
}

func (e *Error) Error() string {
	if e.Reason == nil {
		return e.Code
	}
	return e.Reason.Error()
}
func (e *Error) Unwrap() error { return e.Reason }

// Message is the text for the OCI error body.
func (e *Error) Message() string { return e.Error() }

// SetHeaders puts the challenge and Retry-After, if any, on h.
func (e *Error) SetHeaders(h http.Header) {
	if e.Challenge != "" {
		h.Set("WWW-Authenticate", e.Challenge)
		// The challenge's realm follows the request's forwarding headers:
		// a cache in front must not hand one client's to another.
		h.Set("Cache-Control", "no-store")
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
}

// AsError returns the *Error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Challenge returns the status and WWW-Authenticate value for an auth
// failure; ok is false when err is not one.
func Challenge(err error) (status int, challenge string, ok bool) {
	e, ok := AsError(err)
	if !ok {
		return 0, "", false
	}
	return e.Status, e.Challenge, true
}

func unauthorized(reason error, challenge string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Challenge: challenge, Reason: reason}
}

// denied is the refusal of what the policy does not allow: named in the
// message ("access denied: push on repository team/app"), which tells the
// client and the operator reading its output what to grant. The request
// named it already, so it tells nothing new.
func denied(refused []Access) *Error {
	reason := ErrDenied
	if len(refused) > 0 {
		var parts []string
		for _, a := range refused {
			parts = append(parts, strings.Join(a.Actions, ",")+" on "+a.Type+" "+a.Name)
		}
		reason = fmt.Errorf("%w: %s", ErrDenied, strings.Join(parts, "; "))
	}
	return &Error{Status: http.StatusForbidden, Code: CodeDenied, Reason: reason}
}

func tooManyAttempts(retry time.Duration) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: CodeTooManyRequests, RetryAfter: retry, Reason: ErrTooManyAttempts}
}

func basicChallenge(realm string) string {
	return "Basic realm=" + quote(realm)
}

type challengeScopeKey struct{}

// WithChallengeScope has a Bearer challenge to a request made with ctx ask
// for extra as well as what the request needs: access the request can use
// but does without, such as pull on a mount's source. A client asks its
// token server for what the challenge names, so a token granting it lets
// the mount happen; one without it still authorizes the request.
func WithChallengeScope(ctx context.Context, extra ...Access) context.Context {
	return context.WithValue(ctx, challengeScopeKey{}, extra)
}

// challengeScope is what a challenge to r asks for: need, and the extra
// access WithChallengeScope put on its context.
func challengeScope(r *http.Request, need []Access) []Access {
	extra, _ := r.Context().Value(challengeScopeKey{}).([]Access)
	if len(extra) == 0 {
		return need
	}
	return append(slices.Clip(need), extra...)
}

// bearerChallenge builds the RFC 6750 challenge a Docker client follows to
// the token server; errCode is "", "invalid_token" or "insufficient_scope".
func bearerChallenge(realm, service string, need []Access, errCode string) string {
	var b strings.Builder
	b.WriteString("Bearer realm=")
	b.WriteString(quote(realm))
	b.WriteString(",service=")
	b.WriteString(quote(service))
	if len(need) > 0 {
		b.WriteString(",scope=")
		b.WriteString(quote(FormatScopes(need)))
	}
	if errCode != "" {
		b.WriteString(",error=")
		b.WriteString(quote(errCode))
	}
	return b.String()
}

// quote makes an RFC 7230 quoted-string; scopes and realms never need more.
func quote(s string) string {
	return `"` + quoteEscaper.Replace(s) + `"`
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)
