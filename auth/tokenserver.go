package auth

import (
	"cmp"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/lading-registry/lading/internal/httpx"
)

// Token lifetimes when not configured. The Docker specification wants at
// least 60 seconds for access tokens.
const (
	DefaultTokenExpiry   = 5 * time.Minute
	DefaultRefreshExpiry = 30 * 24 * time.Hour
)

// TokenServer issues registry tokens (Docker token specification), so one
// binary is enough for token auth. Mounted at TokenPath it answers
//
//   - GET ?service=S&scope=repository:a/b:pull,push&scope=...&account=U
//     with optional Basic credentials (none: anonymous), as docker, podman,
//     crane and containerd ask; offline_token=true adds a refresh token;
//   - POST form grant_type=password (username, password, access_type=offline
//     for a refresh token) or grant_type=refresh_token, the OAuth2 form.
//
// It grants each requested scope narrowed to what the policy allows: asking
// for more than allowed is no error, the token just grants less. Only wrong
// credentials are refused.
type TokenServer struct {
	Service string
	Issuer  string
	// Audience goes into access tokens; empty: Service.
	Audience string
	Users    *Users
	Policy   *Policy // nil: DefaultPolicy
	Key      *SigningKey
	Expiry   time.Duration // access tokens; 0: DefaultTokenExpiry
	// RefreshExpiry bounds refresh tokens; a password change revokes them
	// sooner. 0: DefaultRefreshExpiry.
	RefreshExpiry time.Duration
	Limiter       *Limiter
	Logger        *slog.Logger

	now func() time.Time
}

// Authorizer is the Bearer authorizer that trusts this server's tokens.
// realm is the token server's public URL; "" derives it from each request
// (scheme://host/auth/token).
func (ts *TokenServer) Authorizer(realm string) *Bearer {
	return &Bearer{
		Realm:        realm,
		Service:      ts.Service,
		Issuer:       ts.Issuer,
		Audience:     ts.Audience,
		Keys:         ts.Key.Public(),
		Policy:       cmp.Or(ts.Policy, DefaultPolicy),
		PolicyIssues: true,
		Logger:       ts.Logger,
	}
}

// tokenResponse carries the token under both names clients read.
type tokenResponse struct {
	Token        string `json:"token,omitempty"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

func (ts *TokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodGet:
		ts.serveGet(w, r)
	case http.MethodPost:
		ts.servePost(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeErrors(w, &Error{Status: http.StatusMethodNotAllowed, Code: "UNSUPPORTED", Reason: errors.New("GET or POST")})
	}
}

func (ts *TokenServer) serveGet(w http.ResponseWriter, r *http.Request) {
	// r.URL.Query drops what it cannot parse (a stray ';', a bad escape),
	// and with it the service and account checks: refused whole instead,
	// as the registry's routes refuse such a query.
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeErrors(w, badRequest("malformed query: "+err.Error()))
		return
	}
	scopes, err := ts.checkRequest(q.Get("service"), q["scope"])
	if err != nil {
		writeErrors(w, err)
		return
	}
	id := Anonymous
	if user, password, ok := r.BasicAuth(); ok {
		if account := q.Get("account"); account != "" && account != user {
			writeErrors(w, badRequest("account does not match the credentials"))
			return
		}
		if id, err = login(r, ts.Users, ts.Limiter, ts.logger(), user, password); err != nil {
			if e, ok := err.(*Error); ok && e.Status == http.StatusUnauthorized {
				e.Challenge = basicChallenge(ts.Service)
			}
			writeErrors(w, err)
			return
		}
	}
	ts.issue(w, id, scopes, q.Get("offline_token") == "true", false)
}

// servePost answers the OAuth2 password and refresh_token grants; errors
// are OAuth2's JSON, not the registry's.
func (ts *TokenServer) servePost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "unreadable form")
		return
	}
	scopes, err := ts.checkRequest(r.PostForm.Get("service"), r.PostForm["scope"])
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	var id Identity
	offline := false
	switch r.PostForm.Get("grant_type") {
	case "password":
		id, err = login(r, ts.Users, ts.Limiter, ts.logger(), r.PostForm.Get("username"), r.PostForm.Get("password"))
		offline = r.PostForm.Get("access_type") == "offline"
	case "refresh_token":
		id, err = ts.redeem(r, r.PostForm.Get("refresh_token"))
		offline = true // a client holding a refresh token keeps using it
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "want password or refresh_token")
		return
	}
	if err != nil {
		if e, ok := AsError(err); ok && e.Status == http.StatusTooManyRequests {
			e.SetHeaders(w.Header())
			writeOAuthError(w, e.Status, "slow_down", e.Message())
			return
		}
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid credentials")
		return
	}
	ts.issue(w, id, scopes, offline, true)
}

func (ts *TokenServer) checkRequest(service string, scopeParams []string) ([]Access, error) {
	if service != "" && service != ts.Service {
		return nil, badRequest("unknown service " + strconv.Quote(service))
	}
	scopes, err := ParseScopes(scopeParams)
	if err != nil {
		return nil, badRequest(err.Error())
	}
	return scopes, nil
}

func (ts *TokenServer) issue(w http.ResponseWriter, id Identity, scopes []Access, offline, oauth bool) {
	now := ts.clock()
	var granted []Access
	for _, want := range scopes {
		if g := ts.Policy.Grant(id.Name, want); len(g.Actions) > 0 {
			granted = append(granted, g)
		}
	}
	expiry := cmp.Or(ts.Expiry, DefaultTokenExpiry)
	token, err := ts.Key.sign(tokenClaims{
		RegisteredClaims: ts.registered(id.Name, cmp.Or(ts.Audience, ts.Service), now, expiry),
		Access:           granted,
	})
	if err != nil {
		ts.logger().Error("auth: signing token", "err", err)
		writeErrors(w, &Error{Status: http.StatusInternalServerError, Code: "UNKNOWN", Reason: errors.New("cannot sign token")})
		return
	}
	resp := tokenResponse{AccessToken: token, ExpiresIn: int(expiry / time.Second), IssuedAt: now.UTC().Format(time.RFC3339)}
	if oauth {
		resp.Scope = FormatScopes(granted)
	} else {
		resp.Token = token
	}
	if offline && !id.IsAnonymous() {
		if resp.RefreshToken, err = ts.refreshToken(id.Name, now); err != nil {
			ts.logger().Error("auth: signing refresh token", "err", err)
		}
	}
	ts.logger().Debug("auth: token issued", "identity", id, "scope", FormatScopes(granted))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func (ts *TokenServer) registered(subject, audience string, now time.Time, expiry time.Duration) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{
		Issuer:    ts.Issuer,
		Subject:   subject,
		Audience:  jwt.ClaimStrings{audience},
		ExpiresAt: jwt.NewNumericDate(now.Add(expiry)),
		NotBefore: jwt.NewNumericDate(now),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        rand.Text(),
	}
}

// refreshToken is a long-lived JWT for the token server itself (audience:
// the issuer), never accepted by the registry.
func (ts *TokenServer) refreshToken(user string, now time.Time) (string, error) {
	fp, ok := ts.Users.fingerprint(user)
	if !ok {
		return "", errors.New("user vanished")
	}
	return ts.Key.sign(tokenClaims{
		RegisteredClaims: ts.registered(user, ts.Issuer, now, cmp.Or(ts.RefreshExpiry, DefaultRefreshExpiry)),
		Use:              "refresh",
		PasswordHash:     fp,
	})
}

func (ts *TokenServer) redeem(r *http.Request, raw string) (Identity, error) {
	wait, done := ts.Limiter.Reserve(r)
	if wait > 0 {
		return Identity{}, tooManyAttempts(wait)
	}
	ok := false
	defer func() { done(ok) }() // a panic in the check counts as a failure
	var claims tokenClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) {
		return ts.Key.Public().all[0], nil
	},
		jwt.WithValidMethods([]string{ts.Key.method.Alg()}),
		jwt.WithIssuer(ts.Issuer),
		jwt.WithAudience(ts.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(ts.clock),
	)
	ok = err == nil && claims.Use == "refresh" && ts.Users.hasFingerprint(claims.Subject, claims.PasswordHash)
	if !ok {
		return Identity{}, unauthorized(ErrBadCredentials, "")
	}
	httpx.SetUser(r.Context(), claims.Subject)
	return Identity{Name: claims.Subject, Method: MethodBearer}, nil
}

// JWKS serves the public signing key as a JWK Set, for registries elsewhere
// that trust this token server (auth.token.jwks pointing here).
func (ts *TokenServer) JWKS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ts.Key.Public())
	})
}

func (ts *TokenServer) clock() time.Time {
	if ts.now != nil {
		return ts.now()
	}
	return time.Now()
}

func (ts *TokenServer) logger() *slog.Logger { return orDefault(ts.Logger) }

func badRequest(msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "UNSUPPORTED", Reason: errors.New(msg)}
}

// writeErrors answers with the registry's error body, which clients print.
func writeErrors(w http.ResponseWriter, err error) {
	e, ok := AsError(err)
	if !ok {
		e = &Error{Status: http.StatusInternalServerError, Code: "UNKNOWN", Reason: err}
	}
	e.SetHeaders(w.Header())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": e.Code, "message": e.Message()}}})
}

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
