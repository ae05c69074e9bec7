package authtest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// ladingBinary is built once for all tests of the package: each server
// start would otherwise link it again.
var ladingBinary string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if !testing.Short() {
		ladingBinary = os.Getenv("LADING_TEST_BINARY")
		if ladingBinary == "" {
			dir, err := os.MkdirTemp("", "lading-auth-test")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			ladingBinary = filepath.Join(dir, "lading")
			out, err := exec.Command("go", "build", "-o", ladingBinary, "github.com/lading-registry/lading/cmd/lading").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "building lading: %v\n%s", err, out)
				return 1
			}
		}
	}
	return m.Run()
}

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
	return testserver.Start(t, testserver.Options{Binary: ladingBinary, Env: env}), files
}
