package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// needFromRequest lets a test say what the route needs in the query, the
// way the server derives it from the path and method.
func needFromRequest(r *http.Request) []Access {
	need, _ := ParseScopes(r.URL.Query()["need"])
	return need
}

func newBasicRequest(user string, need ...string) *http.Request {
	target := "/v2/"
	for i, n := range need {
		if i == 0 {
			target += "?"
		} else {
			target += "&"
		}
		target += "need=" + n
	}
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if user != "" {
		r.SetBasicAuth(user, password(user))
	}
	return r
}

func TestBasicAllowDeny(t *testing.T) {
	b := &Basic{Realm: "lading", Users: testUsers(t), Policy: mustPolicy(t, testPolicy), Limiter: NewLimiter(0, 0), Logger: quietLogger}
	h := guarded(b, needFromRequest)
	for _, tc := range []struct {
		user   string
		need   []string
		status int
	}{
		// The base route asks for credentials unless they are there.
		{"", nil, 401},
		{"mallory", nil, 200},
		// Anonymous pull on a public glob; its push asks to log in.
		{"", []string{"repository:public/busybox:pull"}, 200},
		{"", []string{"repository:public/busybox:pull,push"}, 401},
		{"", []string{"repository:team/app:pull"}, 401},
		// Per action.
		{"bob", []string{"repository:team/app:pull"}, 200},
		{"bob", []string{"repository:team/app:push"}, 200},
		{"bob", []string{"repository:team/app:delete"}, 403},
		{"bob", []string{"repository:team/app/scratch:delete"}, 200},
		{"bob", []string{"repository:carol/x:pull"}, 403},
		{"bob", []string{"repository:public/busybox:pull"}, 200},
		{"bob", []string{"repository:public/busybox:push"}, 403},
		{"mallory", []string{"repository:team/app:pull"}, 403},
		// Every need must be met.
		{"bob", []string{"repository:team/app:push", "repository:carol/x:pull"}, 403},
		// The admin may do everything.
		{"alice", []string{"repository:secret/db:pull,push,delete"}, 200},
		{"alice", []string{"registry:catalog:*"}, 200},
		{"mallory", []string{"registry:catalog:*"}, 200},
	} {
		resp := do(t, h, newBasicRequest(tc.user, tc.need...))
		if resp.StatusCode != tc.status {
			t.Errorf("%q %v: status %d, want %d", tc.user, tc.need, resp.StatusCode, tc.status)
		}
		if got := resp.Header.Get("WWW-Authenticate"); (tc.status == 401) != (got == `Basic realm="lading"`) {
			t.Errorf("%q %v: challenge %q", tc.user, tc.need, got)
		}
	}
}

func TestBasicErrors(t *testing.T) {
	b := &Basic{Realm: "lading", Users: testUsers(t), Policy: mustPolicy(t, testPolicy), Logger: quietLogger}
	need := []Access{Repository("team/app", ActionPush)}

	r := newBasicRequest("")
	r.SetBasicAuth("bob", "wrong")
	_, err := b.Authorize(r, need)
	if !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong password: %v", err)
	}
	r.SetBasicAuth("nobody", "x")
	if _, err = b.Authorize(r, need); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("unknown user: %v", err)
	}
	_, err = b.Authorize(newBasicRequest(""), need)
	if status, challenge, ok := Challenge(err); !ok || status != 401 || challenge != `Basic realm="lading"` || !errors.Is(err, ErrNoCredentials) {
		t.Errorf("no credentials: %v %d %q", err, status, challenge)
	}
	id, err := b.Authorize(newBasicRequest("mallory"), need)
	if e, ok := AsError(err); !ok || e.Status != 403 || e.Code != CodeDenied || e.Challenge != "" {
		t.Errorf("denied: %v", err)
	}
	if id.Name != "mallory" {
		t.Errorf("a denied request still knows who asked, got %q", id.Name)
	}
	// The refusal names what was not allowed, and only that: bob may pull
	// and push team/app, not delete it, nor pull carol's.
	r = newBasicRequest("bob")
	_, err = b.Authorize(r, []Access{Repository("team/app", ActionPull, ActionPush, ActionDelete), Repository("carol/x", ActionPull)})
	if want := "access denied: delete on repository team/app; pull on repository carol/x"; err == nil || err.Error() != want || !errors.Is(err, ErrDenied) {
		t.Errorf("denied: %v, want %q", err, want)
	}
}

func TestBasicCanAndFilter(t *testing.T) {
	b := &Basic{Users: testUsers(t), Policy: mustPolicy(t, testPolicy)}
	bob, err := b.Authorize(newBasicRequest("bob"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Can(bob, Repository("team/lib", ActionPull)) || b.Can(bob, Repository("carol/x", ActionPull)) {
		t.Error("mount check wrong")
	}
	repos := []string{"carol/x", "public/a", "team/app"}
	if got := b.Filter(bob, repos); !slices.Equal(got, []string{"public/a", "team/app"}) {
		t.Errorf("bob's catalog: %v", got)
	}
	if got := b.Filter(Anonymous, repos); !slices.Equal(got, []string{"public/a"}) {
		t.Errorf("anonymous catalog: %v", got)
	}
}

func TestFailedLoginsRateLimited(t *testing.T) {
	limiter := NewLimiter(3, 0)
	b := &Basic{Realm: "lading", Users: testUsers(t), Limiter: limiter, Logger: quietLogger}
	h := guarded(b, needFromRequest)
	attempt := func(addr, pass string) *http.Response {
		r := newBasicRequest("")
		r.RemoteAddr = addr
		r.SetBasicAuth("bob", pass)
		return do(t, h, r)
	}
	for i := range 3 {
		if resp := attempt("192.0.2.1:1234", "guess"+strconv.Itoa(i)); resp.StatusCode != 401 {
			t.Fatalf("failure %d: status %d", i, resp.StatusCode)
		}
	}
	// Locked out, even with the right password, from any port of the address.
	resp := attempt("192.0.2.1:5678", password("bob"))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "6" {
		t.Fatalf("after the burst: status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Other addresses are not affected.
	if resp := attempt("192.0.2.2:1234", password("bob")); resp.StatusCode != 200 {
		t.Errorf("other address: status %d", resp.StatusCode)
	}
}

// Guesses sent side by side are counted before their passwords are
// checked: no more of them reach the check than the limit allows.
func TestParallelGuessesRateLimited(t *testing.T) {
	b := &Basic{Realm: "lading", Users: testUsers(t), Limiter: NewLimiter(3, time.Hour), Logger: quietLogger}
	h := guarded(b, needFromRequest)
	const guesses = 12
	codes := make(chan int, guesses)
	var start sync.WaitGroup
	start.Add(1)
	var done sync.WaitGroup
	for i := range guesses {
		done.Go(func() {
			r := newBasicRequest("")
			r.RemoteAddr = "192.0.2.9:1234"
			r.SetBasicAuth("bob", "guess"+strconv.Itoa(i))
			start.Wait()
			codes <- do(t, h, r).StatusCode
		})
	}
	start.Done()
	done.Wait()
	close(codes)
	checked := 0
	for c := range codes {
		switch c {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
		default:
			t.Errorf("status %d", c)
		}
	}
	if checked != 3 {
		t.Fatalf("%d of %d parallel guesses were checked, the limit is 3", checked, guesses)
	}
}

// Correct logins side by side, more than the failures allowed (a pull of
// many layers with Basic auth), all pass: a check running holds an attempt
// only until its outcome is known. Failures after them are still counted.
func TestParallelLoginsNotRateLimited(t *testing.T) {
	b := &Basic{Realm: "lading", Users: testUsers(t), Limiter: NewLimiter(3, time.Hour), Logger: quietLogger}
	h := guarded(b, needFromRequest)
	const logins = 16
	codes := make(chan int, logins)
	var start, done sync.WaitGroup
	start.Add(1)
	for range logins {
		done.Go(func() {
			r := newBasicRequest("")
			r.RemoteAddr = "192.0.2.9:1234"
			r.SetBasicAuth("bob", password("bob"))
			start.Wait()
			codes <- do(t, h, r).StatusCode
		})
	}
	start.Done()
	done.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Fatalf("a correct login among %d side by side: status %d", logins, c)
		}
	}
	for i := range 4 {
		r := newBasicRequest("")
		r.RemoteAddr = "192.0.2.9:1234"
		r.SetBasicAuth("bob", "guess"+strconv.Itoa(i))
		want := http.StatusUnauthorized
		if i == 3 {
			want = http.StatusTooManyRequests
		}
		if c := do(t, h, r).StatusCode; c != want {
			t.Fatalf("failure %d after the logins: status %d, want %d", i, c, want)
		}
	}
}

// A login finding every attempt left held by checks running waits for
// their outcome: it is checked after a success, refused after failures.
func TestLimiterQueuesBehindChecks(t *testing.T) {
	l := NewLimiter(2, time.Hour)
	r := httptest.NewRequest("GET", "/", nil)
	reserve := func() func(bool) {
		wait, done := l.Reserve(r)
		if wait != 0 {
			t.Fatalf("attempt refused, wait %v", wait)
		}
		return done
	}
	// waiting returns once a login is waiting for a check to end.
	waiting := func() {
		for {
			l.mu.Lock()
			b := l.buckets[clientAddr(r)]
			w := b != nil && b.ended != nil
			l.mu.Unlock()
			if w {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	first, second := reserve(), reserve()
	queued := make(chan time.Duration, 1)
	go func() {
		wait, done := l.Reserve(r)
		if done != nil {
			done(true)
		}
		queued <- wait
	}()
	waiting()
	first(true)
	if wait := <-queued; wait != 0 {
		t.Fatalf("a login behind a success was refused, wait %v", wait)
	}
	third := reserve()
	go func() {
		wait, _ := l.Reserve(r)
		queued <- wait
	}()
	waiting()
	second(false)
	third(false)
	if wait := <-queued; wait == 0 {
		t.Fatal("a login behind two failures, the limit, was let through")
	}
}

func TestLimiterRefills(t *testing.T) {
	l := NewLimiter(2, 10)
	now := l.now()
	l.now = func() time.Time { return now }
	r := httptest.NewRequest("GET", "/", nil)
	fail := func() {
		wait, done := l.Reserve(r)
		if wait != 0 {
			t.Fatalf("attempt refused, wait %v", wait)
		}
		done(false)
	}
	fail()
	fail()
	if wait, _ := l.Reserve(r); wait != 10 {
		t.Fatalf("empty bucket: wait %v", wait)
	}
	now = now.Add(10)
	wait, done := l.Reserve(r)
	if wait != 0 {
		t.Fatalf("refilled bucket: wait %v", wait)
	}
	done(true) // a success gives its attempt back
	if wait, _ := l.Reserve(r); wait != 0 {
		t.Errorf("after a success: wait %v", wait)
	}
	for i := range maxBuckets + 10 {
		r.RemoteAddr = fmt.Sprintf("[2001:db8:%x::1]:1", i)
		fail()
	}
	if len(l.buckets) > maxBuckets || len(l.buckets) < maxBuckets/2 {
		t.Errorf("%d buckets kept, limit %d", len(l.buckets), maxBuckets)
	}
}

func TestClientAddr(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.1:1234":             "192.0.2.1",
		"[::ffff:192.0.2.1]:1234":    "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:443":      "2001:db8:1:2::/64",
		"@":                          "@", // a unix socket
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		if got := clientAddr(r); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", remote, got, want)
		}
	}
}

// A check that panics counts as a failure: it does not keep its attempt
// held, which would leave later logins from the address waiting for it.
func TestPanickedCheckEndsItsHold(t *testing.T) {
	users := testUsers(t)
	l := NewLimiter(3, time.Hour)
	defer func(was func([]byte, []byte) error) { compareHash = was }(compareHash)
	compareHash = func([]byte, []byte) error { panic("bcrypt") }
	r := httptest.NewRequest("GET", "/", nil)
	func() {
		defer func() { recover() }()
		login(r, users, l, quietLogger, "bob", password("bob"))
	}()
	b := l.buckets[clientAddr(r)]
	if b.checking != 0 || b.tokens != 2 {
		t.Fatalf("after a check that panicked: %d checks held, %v attempts left; want none held, 2 left", b.checking, b.tokens)
	}
}

// A failed login names a user the htpasswd file knows, and never logs a
// name it does not know: that may be a password typed in the wrong field.
func TestFailedLoginLogsOnlyKnownUsers(t *testing.T) {
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	users := testUsers(t)
	for _, name := range []string{"alice", "hunter2-typed-as-a-name"} {
		r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		if _, err := login(r, users, NewLimiter(0, 0), logger, name, "wrong"); err == nil {
			t.Fatalf("%s logged in with a wrong password", name)
		}
	}
	got := logs.String()
	if !strings.Contains(got, `msg="auth: login failed: wrong password"`) || !strings.Contains(got, "user=alice") {
		t.Errorf("the known user's failure is not named: %q", got)
	}
	if !strings.Contains(got, `msg="auth: login failed: unknown user"`) || strings.Contains(got, "hunter2") {
		t.Errorf("an unknown name was logged: %q", got)
	}
}
