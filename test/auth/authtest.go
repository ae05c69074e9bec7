// Package authtest writes what a lading with auth needs (an htpasswd file of
// bcrypt users, an access policy, a token signing key) and the environment
// that turns it on, for tests that run the real process.
package authtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// Files are the auth files of one test, in its temporary directory.
type Files struct {
	Htpasswd string
	Policy   string // empty: no policy file, every user may do everything
	Key      string // PEM PKCS #8 Ed25519 key the built-in token server signs with
	// Signer is the private key in Key, for tests that mint their own tokens.
	Signer ed25519.PrivateKey
}

// Write creates the files: users maps names to passwords, policy is YAML
// ("" for none). Hashes use bcrypt's lowest cost: Basic auth checks the
// password on every request, and the suites make thousands.
func Write(t testing.TB, users map[string]string, policy string) *Files {
	t.Helper()
	dir := t.TempDir()
	f := &Files{Htpasswd: filepath.Join(dir, "htpasswd"), Key: filepath.Join(dir, "token.key")}

	f.SetUsers(t, users)
	if policy != "" {
		f.Policy = filepath.Join(dir, "policy.yaml")
		f.SetPolicy(t, policy)
	}

	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.Key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	f.Signer = key
	return f
}

// SetUsers replaces the htpasswd file; a running lading picks it up
// within a second or so.
func (f *Files) SetUsers(t testing.TB, users map[string]string) {
	t.Helper()
	var lines []string
	for name, password := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, name+":"+string(hash))
	}
	slices.Sort(lines)
	writeFile(t, f.Htpasswd, strings.Join(lines, "\n")+"\n")
}

// SetPolicy replaces the policy file, as SetUsers does the users.
func (f *Files) SetPolicy(t testing.TB, policy string) {
	t.Helper()
	writeFile(t, f.Policy, policy)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// BasicEnv configures lading for Basic auth under the policy.
func (f *Files) BasicEnv() []string {
	env := []string{"LADING_AUTH_HTPASSWD_PATH=" + f.Htpasswd}
	if f.Policy != "" {
		env = append(env, "LADING_AUTH_POLICY="+f.Policy)
	}
	return env
}

// TokenEnv configures lading for bearer tokens from its built-in token
// server, which logs users in from the htpasswd file and grants what the
// policy allows.
func (f *Files) TokenEnv() []string {
	return append(f.BasicEnv(),
		"LADING_AUTH_TOKEN_SERVER_ENABLED=true",
		"LADING_AUTH_TOKEN_SERVER_KEY="+f.Key,
	)
}
