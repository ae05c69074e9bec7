package authtest

import (
	"os"
	"testing"

	"github.com/lading-registry/lading/internal/testserver"
)

// Users of the tests, with their passwords. The policy below gives them:
//
//	root   admin: everything, everywhere
//	alice  devs: pull and push on team/**, and delete there
//	bob    devs: pull and push on team/**
//	carol  pull on secret/**
//	eve    nothing beyond what anonymous callers get
var users = map[string]string{
	"root":  "root-Pa55word",
	"alice": "alice-Pa55word",
	"bob":   "bob-Pa55word",
	"carol": "carol-Pa55word",
	"eve":   "eve-Pa55word",
}

const policy = `
admins:
  users: [root]
groups:
  devs: [alice, bob]
rules:
  - repositories: ["public/**"]
    anonymous: [pull]
  - repositories: ["team/**"]
    groups: [devs]
    actions: [pull, push]
  - repositories: ["team/**"]
    users: [alice]
    actions: [delete]
  - repositories: ["secret/**"]
    users: [carol]
    actions: [pull]
`

// TestMain builds lading once for every test of the package.
func TestMain(m *testing.M) { os.Exit(testserver.Main(m)) }

// mode is how clients prove who they are to the server under test.
type mode string

const (
	basicMode mode = "basic"
	tokenMode mode = "token"
)

// start runs lading with the test users and policy, in mode, with a
// failed-login limit high enough that the tests' own wrong passwords never
// reach it. Debug logs are on so the secrets check sees every line.
func start(t *testing.T, m mode, extraEnv ...string) (*testserver.Server, *Files) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs lading")
	}
	files := Write(t, users, policy)
	env := files.BasicEnv()
	if m == tokenMode {
		env = files.TokenEnv()
	}
	env = append(env, "LADING_LOG_LEVEL=debug", "LADING_AUTH_RATELIMIT_BURST=1000")
	env = append(env, extraEnv...)
	return testserver.Start(t, testserver.Options{Env: env}), files
}
