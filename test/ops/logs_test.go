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
	if !strings.Contains(out, `"msg":"auth: login failed: unknown user or wrong password"`) || !strings.Contains(out, `"user":"`+user+`"`) {
		t.Errorf("the failed login's line does not name the user tried")
	}
}
