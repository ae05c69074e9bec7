package auth

import (
	"log/slog"
	"net/http"

	"github.com/lading-registry/lading/internal/httpx"
)

// Basic authorizes requests carrying HTTP Basic credentials from an htpasswd
// file, under a Policy. Requests without credentials act as anonymous, which
// the policy may allow to pull; the /v2/ base (no needs) always asks for
// credentials then, so that login flows see the challenge.
type Basic struct {
	Realm   string
	Users   *Users
	Policy  *Policy  // nil: every user may do everything
	Limiter *Limiter // nil: no limit on failed logins
	Logger  *slog.Logger
}

var _ Authorizer = (*Basic)(nil)

func (b *Basic) Authorize(r *http.Request, need []Access) (Identity, error) {
	user, password, ok := r.BasicAuth()
	if !ok {
		if len(need) > 0 && b.Policy.allowsAll("", need) {
			return Anonymous, nil
		}
		return Identity{}, unauthorized(ErrNoCredentials, basicChallenge(b.Realm))
	}
	id, err := login(r, b.Users, b.Limiter, orDefault(b.Logger), user, password)
	if err != nil {
		if e, ok := err.(*Error); ok && e.Status == http.StatusUnauthorized {
			e.Challenge = basicChallenge(b.Realm)
		}
		return Identity{}, err
	}
	if !b.Policy.allowsAll(user, need) {
		return id, denied(b.Policy.refused(user, need))
	}
	return id, nil
}

func (b *Basic) Can(id Identity, a Access) bool { return b.Policy.Allows(id.Name, a) }

func (b *Basic) Filter(id Identity, repos []string) []string { return b.Policy.Filter(id.Name, repos) }

// PullsNothing implements NothingToPull.
func (b *Basic) PullsNothing(id Identity) bool { return b.Policy.PullsNothing(id.Name) }

// login checks a password under the failed-login limit; a 401 it returns
// has no challenge yet, the caller knows which one to ask.
func login(r *http.Request, users *Users, limiter *Limiter, logger *slog.Logger, user, password string) (Identity, error) {
	wait, done := limiter.Reserve(r)
	if wait > 0 {
		logger.Warn("auth: login refused, too many failures", "client", clientAddr(r))
		return Identity{}, tooManyAttempts(wait)
	}
	ok := false
	defer func() { done(ok) }() // a panic in the check counts as a failure
	ok = users != nil && users.Verify(user, password)
	if !ok {
		// A known user is named; an unknown name is not logged, since it
		// may be a password typed in the wrong field.
		if _, known := users.fingerprint(user); known {
			logger.Info("auth: login failed: wrong password", "client", clientAddr(r), "user", user)
		} else {
			logger.Info("auth: login failed: unknown user", "client", clientAddr(r))
		}
		return Identity{}, unauthorized(ErrBadCredentials, "")
	}
	httpx.SetUser(r.Context(), user)
	return Identity{Name: user, Method: MethodBasic}, nil
}

func (p *Policy) allowsAll(user string, need []Access) bool {
	for _, a := range need {
		if !p.Allows(user, a) {
			return false
		}
	}
	return true
}

// refused returns what of need user may not do, an action at a time, for
// the refusal's message.
func (p *Policy) refused(user string, need []Access) []Access {
	var out []Access
	for _, a := range need {
		for _, act := range a.Actions {
			one := Access{Type: a.Type, Name: a.Name, Actions: []string{act}}
			if !p.Allows(user, one) {
				out = append(out, one)
			}
		}
	}
	return out
}
