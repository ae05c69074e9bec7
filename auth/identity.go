package auth

import "log/slog"

// How an Identity was established.
const (
	MethodAnonymous = "anonymous"
	MethodBasic     = "basic"
	MethodBearer    = "bearer"
)

// Identity is who a request acts for. It carries no secret: the password
// or token that proved it is never kept.
type Identity struct {
	// Name is the user (the token's subject); empty when anonymous.
	Name   string
	Method string
	// granted is a bearer token's access claim: the most it may do.
	granted []Access
}

// Anonymous is the identity of a request without credentials.
var Anonymous = Identity{Method: MethodAnonymous}

// IsAnonymous reports whether no user is behind the request.
func (id Identity) IsAnonymous() bool { return id.Name == "" }

func (id Identity) String() string {
	if id.IsAnonymous() {
		return MethodAnonymous
	}
	return id.Name
}

// LogValue keeps logs to the user and method, whatever grows in Identity.
func (id Identity) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", id.Name), slog.String("method", id.Method))
}
