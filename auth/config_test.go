package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func writePEM(t *testing.T, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNewModes(t *testing.T) {
	a, err := New(Config{}, quietLogger)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Authorizer.(Open); !ok || a.TokenServer != nil {
		t.Errorf("zero config: %T", a.Authorizer)
	}
	if a := newAuthFromFiles(t, Config{}); a.TokenServer != nil {
		t.Error("htpasswd alone has no token server")
	} else if _, ok := a.Authorizer.(*Basic); !ok {
		t.Errorf("htpasswd: %T", a.Authorizer)
	}
	if a := newAuthFromFiles(t, Config{Token: TokenConfig{Server: TokenServerConfig{Enabled: true}}}); a.TokenServer == nil || a.TokenServer.Service != DefaultService {
		t.Error("builtin: no token server, or not for the default service")
	} else if b, ok := a.Authorizer.(*Bearer); !ok || b.Policy == nil || b.Issuer != DefaultService {
		t.Errorf("builtin: %+v", a.Authorizer)
	}

	key := newIssuerKey(t, "ES256")
	bundle := filepath.Join(t.TempDir(), "issuer.pem")
	os.WriteFile(bundle, key.certPEM(t), 0o644)
	a, err = New(Config{Token: TokenConfig{Realm: testRealm, Service: testService, Issuer: testIssuer, CertBundle: bundle}}, quietLogger)
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := a.Authorizer.(*Bearer); !ok || b.Policy != nil {
		t.Fatalf("external issuer: %+v", a.Authorizer)
	}
	tok := key.sign(t, validClaims(time.Now()), "")
	if _, err := a.Authorizer.Authorize(bearerRequest(tok), []Access{Repository("team/app", ActionPush)}); err != nil {
		t.Errorf("external token: %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	md5 := filepath.Join(dir, "htpasswd")
	os.WriteFile(md5, []byte("bob:$apr1$ZkgK2xQ5$A3S5yDdL0QJcEaZ3rMClp/\n"), 0o600)
	bcrypt := filepath.Join(dir, "htpasswd-bcrypt")
	os.WriteFile(bcrypt, htpasswdFor(t, "alice"), 0o600)
	badPolicy := filepath.Join(dir, "policy.yaml")
	os.WriteFile(badPolicy, []byte("rules: [{repositories: [a], users: [x], actions: [write]}]"), 0o600)
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"md5 htpasswd", Config{Htpasswd: HtpasswdConfig{md5}}, "only bcrypt"},
		{"missing htpasswd", Config{Htpasswd: HtpasswdConfig{filepath.Join(dir, "nope")}}, "no such file"},
		{"bad policy", Config{Policy: badPolicy}, `unknown action "write"`},
		{"builtin and jwks", Config{Token: TokenConfig{Server: TokenServerConfig{Enabled: true}, JWKS: "http://127.0.0.1/jwks"}}, "excludes"},
		{"realm without keys", Config{Token: TokenConfig{Realm: testRealm}}, "needs token.certbundle or token.jwks"},
		{"keys without realm", Config{Token: TokenConfig{JWKS: "http://127.0.0.1/jwks"}}, "token.realm is required"},
		{"both key sources", Config{Token: TokenConfig{Realm: testRealm, JWKS: "x", CertBundle: "y"}}, "exclusive"},
		{"htpasswd with external", Config{Htpasswd: HtpasswdConfig{md5}, Token: TokenConfig{Realm: testRealm, JWKS: "x"}}, "no use"},
		{"missing key", Config{Htpasswd: HtpasswdConfig{bcrypt}, Token: TokenConfig{Server: TokenServerConfig{Enabled: true, Key: filepath.Join(dir, "nope")}}}, "token.server.key"},
		{"token server without users", Config{Token: TokenConfig{Server: TokenServerConfig{Enabled: true}}}, "token.server.enabled needs htpasswd.path"},
		{"bad policy named by its key", Config{Policy: badPolicy}, "auth.policy: policy " + badPolicy},
	} {
		_, err := New(tc.cfg, quietLogger)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

// Replicas that share a key file accept each other's tokens.
func TestSharedSigningKey(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyPath := writePEM(t, "PRIVATE KEY", der)
	cfg := Config{Token: TokenConfig{Server: TokenServerConfig{Enabled: true, Key: keyPath}}}
	replicaA, replicaB := newAuthFromFiles(t, cfg), newAuthFromFiles(t, cfg)

	srvA := httptest.NewServer(replicaA.Handler(http.NotFoundHandler()))
	defer srvA.Close()
	req, _ := http.NewRequest("GET", srvA.URL+TokenPath+"?scope=repository:team/app:pull", nil)
	req.SetBasicAuth("bob", password("bob"))
	_, tr := decodeToken(t, mustDo(t, req))
	if _, err := replicaB.Authorizer.Authorize(bearerRequest(tr.Token), []Access{Repository("team/app", ActionPull)}); err != nil {
		t.Errorf("replica B refuses replica A's token: %v", err)
	}
}

func mustDo(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestLoadSigningKey(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	k, err := LoadSigningKey(writePEM(t, "EC PRIVATE KEY", sec1))
	if err != nil || k.method.Alg() != "ES256" {
		t.Errorf("EC PRIVATE KEY: %v", err)
	}
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ec384)
	if k, err := LoadSigningKey(writePEM(t, "PRIVATE KEY", pkcs8)); err != nil || k.method.Alg() != "ES384" {
		t.Errorf("PKCS #8 P-384: %v", err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	if k, err := LoadSigningKey(writePEM(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))); err != nil || k.method.Alg() != "RS256" {
		t.Errorf("RSA key: %v", err)
	}
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := LoadSigningKey(writePEM(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(weak))); err == nil || !strings.Contains(err.Error(), "at least 2048") {
		t.Errorf("1024-bit RSA key: %v", err)
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	sec1, _ = x509.MarshalECPrivateKey(p224)
	if _, err := LoadSigningKey(writePEM(t, "EC PRIVATE KEY", sec1)); err == nil || !strings.Contains(err.Error(), "unsupported ECDSA curve") {
		t.Errorf("P-224 key: %v", err)
	}
	if _, err := LoadSigningKey(writePEM(t, "CERTIFICATE", []byte("x"))); err == nil {
		t.Error("a PEM without a private key must fail")
	}
}

func TestConfigYAMLKeys(t *testing.T) {
	var cfg Config
	err := yaml.Unmarshal([]byte(`
htpasswd: {path: /etc/lading/htpasswd}
policy: /etc/lading/policy.yaml
token:
  realm: https://registry.example/auth/token
  service: registry.example
  issuer: lading-auth
  audience: registry
  server: {enabled: true, key: /etc/lading/token-key.pem, expiry: 10m}
ratelimit: {burst: 5, per: 1m}
`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Htpasswd: HtpasswdConfig{"/etc/lading/htpasswd"},
		Policy:   "/etc/lading/policy.yaml",
		Token: TokenConfig{Realm: "https://registry.example/auth/token", Service: "registry.example", Issuer: "lading-auth", Audience: "registry",
			Server: TokenServerConfig{Enabled: true, Key: "/etc/lading/token-key.pem", Expiry: 10 * time.Minute}},
		RateLimit: RateLimitConfig{Burst: 5, Per: time.Minute},
	}
	if cfg != want {
		t.Errorf("decoded %+v\nwant %+v", cfg, want)
	}
}

// Files anyone on the machine may change or read are named at start: the
// htpasswd and policy are read again when they change, and the signing key
// signs any token. A plain-HTTP JWKS away from this machine is named too.
func TestNewWarnsOfLooseFiles(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyPath := writePEM(t, "PRIVATE KEY", der)
	dir := t.TempDir()
	cfg := Config{Htpasswd: HtpasswdConfig{Path: filepath.Join(dir, "htpasswd")}, Policy: filepath.Join(dir, "policy.yaml"),
		Token: TokenConfig{Server: TokenServerConfig{Enabled: true, Key: keyPath}}}
	os.WriteFile(cfg.Htpasswd.Path, htpasswdFor(t, "alice"), 0o644)
	os.WriteFile(cfg.Policy, []byte(testPolicy), 0o644)
	warnings := func(cfg Config) string {
		t.Helper()
		var log strings.Builder
		if _, err := New(cfg, slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}))); err != nil {
			t.Fatal(err)
		}
		return log.String()
	}
	if got := warnings(cfg); got != "" {
		t.Errorf("files closed to others: %s", got)
	}
	os.Chmod(cfg.Htpasswd.Path, 0o666)
	os.Chmod(cfg.Policy, 0o646)
	os.Chmod(keyPath, 0o644)
	got := warnings(cfg)
	for _, key := range []string{"auth.htpasswd.path", "auth.policy", "auth.token.server.key"} {
		if !strings.Contains(got, key) {
			t.Errorf("no warning names %s: %s", key, got)
		}
	}

	external := Config{Token: TokenConfig{Realm: testRealm, JWKS: "http://user:s3cret@issuer.example/jwks"}}
	if got := warnings(external); !strings.Contains(got, "plain HTTP") || strings.Contains(got, "s3cret") {
		t.Errorf("plain-HTTP JWKS: %q", got)
	}
	external.Token.JWKS = "http://127.0.0.1:8080/jwks"
	if got := warnings(external); got != "" {
		t.Errorf("JWKS on this machine: %s", got)
	}
}
