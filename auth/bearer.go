package auth

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/lading-registry/lading/internal/httpx"
)

// TokenPath is where the built-in token server is mounted by default.
const TokenPath = "/auth/token"

// DefaultLeeway absorbs clock skew between token issuer and registry.
const DefaultLeeway = 30 * time.Second

// signingMethods are the JWT algorithms accepted; "none" and HMAC never are.
var signingMethods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Bearer authorizes requests carrying a token from a Docker-style token
// server (https://distribution.github.io/distribution/spec/auth/token/): a
// JWT signed by one of Keys, issued by Issuer for Audience, whose
// "access" claim grants what the route needs. Without a fitting token the
// client is sent, by the challenge, to Realm for one.
type Bearer struct {
	// Realm is the token server's URL. Empty derives it from the request:
	// scheme://host/auth/token, the built-in token server on this host.
	Realm   string
	Service string // names the registry in challenges
	Issuer  string
	// Audience is the aud claim tokens must carry; empty: Service.
	Audience string
	Keys     Keys
	// Policy, when one is known here (always with the built-in token
	// server), must allow what a request needs as well as the token: it
	// narrows an issuer's grants, and a change to it binds tokens issued
	// before. It tells a user who may not do something (403 DENIED) apart
	// from a token that merely lacks scope (401 insufficient_scope, the
	// client fetches a better one), and filters the catalog. Nil: the
	// issuer's grants are all we know.
	Policy *Policy
	// PolicyIssues says the tokens come from the built-in token server,
	// which grants what Policy allows: the policy alone then decides a
	// mount's source, which a push token need not have asked for.
	PolicyIssues bool
	Leeway       time.Duration // 0: DefaultLeeway
	Logger       *slog.Logger

	now func() time.Time // tests move the clock
}

var _ Authorizer = (*Bearer)(nil)

// tokenClaims are the claims of the Docker token specification, and the
// marks of our own refresh tokens.
type tokenClaims struct {
	jwt.RegisteredClaims
	Access []Access `json:"access,omitempty"`
	// Use is "refresh" on refresh tokens, which never authorize a request.
	Use string `json:"use,omitempty"`
	// PasswordHash fingerprints the user's hash when a refresh token was
	// issued; a new password revokes it.
	PasswordHash string `json:"pwh,omitempty"`
}

func (b *Bearer) Authorize(r *http.Request, need []Access) (Identity, error) {
	challenge := func(errCode string) string {
		return bearerChallenge(b.realm(r), b.Service, challengeScope(r, need), errCode)
	}
	raw, ok := bearerToken(r)
	if !ok {
		return Identity{}, unauthorized(ErrNoCredentials, challenge(""))
	}
	id, err := b.Verify(r.Context(), raw)
	if err != nil {
		e := err.(*Error)
		e.Challenge = challenge("invalid_token")
		return Identity{}, e
	}
	if b.Policy != nil && !b.Policy.allowsAll(id.Name, need) {
		if id.IsAnonymous() {
			// Logging in may help: the client fetches a token as a user.
			return id, unauthorized(ErrInsufficientScope, challenge("insufficient_scope"))
		}
		return id, denied(b.Policy.refused(id.Name, need))
	}
	for _, a := range need {
		if !covers(id.granted, a) {
			return id, unauthorized(ErrInsufficientScope, challenge("insufficient_scope"))
		}
	}
	return id, nil
}

// Verify checks a raw token and returns whom it identifies and what it
// grants. Errors are *Error with a Reason telling which check failed.
func (b *Bearer) Verify(ctx context.Context, raw string) (Identity, error) {
	now := b.now
	if now == nil {
		now = time.Now
	}
	var claims tokenClaims
	_, err := jwt.ParseWithClaims(raw, &claims, b.keyfunc(ctx),
		jwt.WithValidMethods(signingMethods),
		jwt.WithIssuer(b.Issuer),
		jwt.WithAudience(cmp.Or(b.Audience, b.Service)),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cmp.Or(b.Leeway, DefaultLeeway)),
		jwt.WithTimeFunc(now),
	)
	if err != nil {
		return Identity{}, unauthorized(tokenReason(err), "")
	}
	if claims.Use != "" {
		return Identity{}, unauthorized(ErrTokenMalformed, "")
	}
	return Identity{Name: claims.Subject, Method: MethodBearer, granted: claims.Access}, nil
}

func (b *Bearer) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		keys, err := b.Keys.Lookup(ctx, kid)
		if err != nil {
			orDefault(b.Logger).Error("auth: token keys unavailable", "err", err)
			return nil, err
		}
		set := jwt.VerificationKeySet{}
		for _, k := range keys {
			set.Keys = append(set.Keys, k)
		}
		return set, nil
	}
}

// tokenReason names the first check a token failed.
func tokenReason(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrTokenMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return ErrTokenSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrTokenNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ErrTokenAudience
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ErrTokenIssuer
	}
	return ErrTokenMalformed
}

// Can needs what a request needs: the token's grant, and the policy's
// leave where one is known. With the built-in token server the policy
// alone decides: a push token that did not ask for the mount source may
// still mount it if the user may pull it. An external issuer's grants
// always count, so that a broad policy, meant to cap an issuer, never
// widens what its tokens reach.
func (b *Bearer) Can(id Identity, a Access) bool {
	if b.Policy != nil && !b.Policy.Allows(id.Name, a) {
		return false
	}
	return b.Policy != nil && b.PolicyIssues || covers(id.granted, a)
}

// Filter uses the policy where it is known. Otherwise a token granting the
// catalog shows all of it (the issuer decided), and any other only the
// repositories it may pull.
func (b *Bearer) Filter(id Identity, repos []string) []string {
	if b.Policy != nil {
		return b.Policy.Filter(id.Name, repos)
	}
	if covers(id.granted, Catalog) {
		return repos
	}
	out := make([]string, 0, len(repos))
	for _, r := range repos {
		if covers(id.granted, Repository(r, ActionPull)) {
			out = append(out, r)
		}
	}
	return out
}

// PullsNothing implements NothingToPull as Filter decides: by the policy
// where it is known, else by the token's grants.
func (b *Bearer) PullsNothing(id Identity) bool {
	if b.Policy != nil {
		return b.Policy.PullsNothing(id.Name)
	}
	if covers(id.granted, Catalog) {
		return false
	}
	return !slices.ContainsFunc(id.granted, func(g Access) bool { return g.Type == TypeRepository && g.Allows(ActionPull) })
}

// realm is the token server's address as the client sees it: behind a
// proxy, the scheme and host it names in Forwarded (RFC 7239) or the
// X-Forwarded-Proto and X-Forwarded-Host it sets. (A client naming another
// host there sends only itself elsewhere.)
func (b *Bearer) realm(r *http.Request) string {
	if b.Realm != "" {
		return b.Realm
	}
	proto, host := httpx.Forwarded(r.Header)
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(proto, "https") {
		scheme = "https"
	}
	if !validHost(host) {
		host = r.Host
	}
	return scheme + "://" + host + TokenPath
}

// validHost reports whether host may stand in a challenge's quoted realm
// as a URL's host[:port].
func validHost(host string) bool {
	if host == "" || len(host) > 255 {
		return false
	}
	for _, c := range []byte(host) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"\/?#@,;`, c) >= 0 {
			return false
		}
	}
	return true
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
