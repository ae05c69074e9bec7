package authtest

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// recorder keeps what a client sent and got: every credential (what follows
// the scheme in an Authorization header) and every exchange.
type recorder struct {
	mu        sync.Mutex
	seen      []string
	exchanges []string // "POST /v2/...?query 202"
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, cred, ok := strings.Cut(req.Header.Get("Authorization"), " "); ok {
		r.seen = append(r.seen, cred)
	}
	if err == nil {
		r.exchanges = append(r.exchanges, req.Method+" "+req.URL.RequestURI()+" "+strconv.Itoa(resp.StatusCode))
	}
	return resp, err
}

// testSecretsNotLogged pushes and pulls with credentials, at debug level,
// and looks for them in everything the process wrote.
func testSecretsNotLogged(t *testing.T, m mode, addr string, logs func() string) {
	rec := &recorder{}
	dst := ref(t, addr, "team/app:secrets")
	if err := remote.Write(dst, randomImage(t), remote.WithAuth(login("bob")), remote.WithTransport(rec)); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(dst, remote.WithAuth(login("alice")), remote.WithTransport(rec)); err != nil {
		t.Fatal(err)
	}
	if len(rec.seen) == 0 {
		t.Fatal("the client sent no credentials")
	}
	if m == tokenMode && !strings.Contains(strings.Join(rec.seen, " "), ".") {
		t.Fatalf("no token among the credentials sent: %q", rec.seen)
	}
	checkLogs(t, logs(), rec.seen)
}

// checkLogs fails if logs hold any user's password, or any of secrets.
func checkLogs(t *testing.T, logs string, secrets []string) {
	t.Helper()
	if !strings.Contains(logs, "level=DEBUG") {
		t.Fatal("no debug lines in the log: the check would miss what they hold")
	}
	for user, password := range users {
		if strings.Contains(logs, password) {
			t.Errorf("the log holds %s's password", user)
		}
	}
	for _, s := range secrets {
		// A token's signature alone is enough to give it away.
		if i := strings.LastIndexByte(s, '.'); i >= 0 {
			s = s[i+1:]
		}
		if strings.Contains(logs, s) {
			t.Errorf("the log holds a credential the client sent (%.12s...)", s)
		}
	}
}
