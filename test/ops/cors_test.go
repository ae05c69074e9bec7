package ops

import (
	"net/http"
	"testing"

	authtest "github.com/lading-registry/lading/test/auth"
)

// TestCORSBeforeAuthentication runs the binary with a login and one web
// interface's origin: the interface's preflight is answered without
// credentials, and its requests carry what a browser needs to read the
// answers, a refusal included.
func TestCORSBeforeAuthentication(t *testing.T) {
	files := authtest.Write(t, map[string]string{"alice": "alice-secret"}, "")
	env := append(files.BasicEnv(), "LADING_HTTP_CORSORIGINS=https://ui.example.com")
	_, addr := serve(t, env, "--root", t.TempDir())
	base := "http://" + addr

	req, _ := http.NewRequest(http.MethodOptions, base+"/v2/team/app/manifests/v1", nil)
	req.Header.Set("Origin", "https://ui.example.com")
	req.Header.Set("Access-Control-Request-Method", "DELETE")
	req.Header.Set("Access-Control-Request-Headers", "authorization")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://ui.example.com" ||
		resp.Header.Get("Access-Control-Allow-Headers") != "authorization" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	req, _ = http.NewRequest(http.MethodGet, base+"/v2/", nil)
	req.Header.Set("Origin", "https://ui.example.com")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Access-Control-Allow-Origin") != "https://ui.example.com" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("GET /v2/ without a login: %d %v", resp.StatusCode, resp.Header)
	}

	req, _ = http.NewRequest(http.MethodGet, base+"/v2/", nil)
	req.Header.Set("Origin", "https://elsewhere.example.com")
	req.SetBasicAuth("alice", "alice-secret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin: %d %v", resp.StatusCode, resp.Header)
	}
}
