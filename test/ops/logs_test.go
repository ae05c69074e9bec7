package ops

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestAccessLog checks the JSON access line of a push and of requests
// carrying credentials: every field an operator needs is there, and no
// password, header or query string is.
func TestAccessLog(t *testing.T) {
	const user, password, wrong, queryToken = "ops", "s3cr3t-pass", "wr0ng-pass", "qs-secret-token"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := writeFile(t, "htpasswd", user+":"+string(hash)+"\n")
	p, addr := serve(t, nil, "--root", t.TempDir(), "--log-format", "json", "--set", "auth.htpasswd.path="+htpasswd)
	base := "http://" + addr

	for _, c := range []struct {
		pass, query string
		want        int
	}{
		{password, "", http.StatusOK},
		{wrong, "", http.StatusUnauthorized},
		{password, "?access_token=" + queryToken, http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+"/v2/"+c.query, nil)
		req.SetBasicAuth(user, c.pass)
		req.Header.Set("X-Request-Id", "ops-check-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("GET /v2/ as %s: %s, want %d", c.pass, resp.Status, c.want)
		}
		if resp.Header.Get("X-Request-Id") != "ops-check-1" {
			t.Errorf("request id not echoed: %q", resp.Header.Get("X-Request-Id"))
		}
	}
	if p.stop(t) != 0 {
		t.Error("exit status after SIGTERM is not 0")
	}
	out := p.output()
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	for _, secret := range []string{password, wrong, queryToken, basic} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}

	var statuses []float64
	var users []any
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %s", line)
		}
		if rec["msg"] != "request" || rec["request_id"] != "ops-check-1" {
			continue
		}
		for _, field := range []string{"method", "route", "repository", "path", "proto", "status", "bytes_in", "bytes_out", "duration", "client", "user", "user_agent"} {
			if _, ok := rec[field]; !ok {
				t.Errorf("access line lacks %s: %s", field, line)
			}
		}
		if rec["route"] != "base" || rec["client"] != "127.0.0.1" || rec["path"] != "/v2/" || rec["proto"] != "HTTP/1.1" {
			t.Errorf("access line: %s", line)
		}
		if d, ok := rec["duration"].(float64); !ok || d <= 0 || time.Duration(d) > 10*time.Second {
			t.Errorf("duration %v is not a plausible count of nanoseconds", rec["duration"])
		}
		statuses = append(statuses, rec["status"].(float64))
		users = append(users, rec["user"])
	}
	if len(statuses) != 3 || statuses[0] != 200 || statuses[1] != 401 || statuses[2] != 200 {
		t.Errorf("statuses logged %v, want [200 401 200]", statuses)
	}
	// Who acted: the user logged in, nobody for the refused login.
	if len(users) != 3 || users[0] != user || users[1] != "" || users[2] != user {
		t.Errorf("users logged %q, want [%s \"\" %s]", users, user, user)
	}
	if !strings.Contains(out, `"msg":"auth: login failed: wrong password","client":"127.0.0.1","user":"`+user+`"`) {
		t.Errorf("the failed login's line does not name the known user tried")
	}
}

// Behind a trusted proxy each client is itself: its address is logged, and
// its failed logins are its own, not every client's behind the proxy. A
// client naming itself another in X-Forwarded-For without the proxy gets
// nowhere.
func TestClientsBehindATrustedProxy(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := writeFile(t, "htpasswd", "ops:"+string(hash)+"\n")
	p, addr := serve(t, nil, "--root", t.TempDir(), "--log-format", "json", "--set", "auth.htpasswd.path="+htpasswd,
		"--set", "auth.ratelimit.burst=2", "--set", "auth.ratelimit.per=1h", "--set", "http.trustedproxies=127.0.0.0/8")
	login := func(client string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/", nil)
		req.SetBasicAuth("ops", "wrong")
		req.Header.Set("X-Forwarded-For", "198.51.100.66, "+client)
		req.Header.Set("User-Agent", "behind-proxy")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 2 {
		if code := login("203.0.113.1"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d of client 1: %d", i+1, code)
		}
	}
	if code := login("203.0.113.1"); code != http.StatusTooManyRequests {
		t.Fatalf("client 1 past its failures: %d, want 429", code)
	}
	if code := login("203.0.113.2"); code != http.StatusUnauthorized {
		t.Fatalf("client 2 behind the same proxy: %d, want 401, its own failures", code)
	}
	p.stop(t)
	out := p.output()
	for _, want := range []string{`"client":"203.0.113.1"`, `"client":"203.0.113.2"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	for line := range strings.SplitSeq(out, "\n") {
		if strings.Contains(line, `"user_agent":"behind-proxy"`) && (strings.Contains(line, `"client":"198.51.100.66"`) || strings.Contains(line, `"client":"127.0.0.1"`)) {
			t.Errorf("a client's own claim or the proxy was logged as the client: %s", line)
		}
	}
}
