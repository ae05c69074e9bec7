// Package testenv starts real servers (an S3 gateway, Redis) on 127.0.0.1
// for tests, so components that talk to them are tested against the real
// protocol rather than a fake.
//
// Each call starts a dedicated process with its own temporary directory and
// random credentials, so tests never share state; starting one takes well
// under a second. The process stops when the test ends (or when the stop
// function of the Start variants, meant for TestMain, is called), and on
// Linux the kernel kills it if the test binary dies first.
//
// When a server's binary is missing the test is skipped, except under
// CI=true, where a skip would hide a gap in coverage, so it fails instead.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// S3 starts an S3 gateway (versitygw over a temporary folder) with one empty
// bucket, for the duration of t.
func S3(t testing.TB) S3Server {
	t.Helper()
	srv, stop, err := StartS3()
	if err != nil {
		FailOrSkip(t, err)
	}
	t.Cleanup(stop)
	return srv
}

// Redis starts a Redis server without persistence for the duration of t and
// returns its address.
func Redis(t testing.TB) string {
	t.Helper()
	addr, stop, err := StartRedis()
	if err != nil {
		FailOrSkip(t, err)
	}
	t.Cleanup(stop)
	return addr
}

// FailOrSkip ends a test that could not start a server: a skip when the
// server's binary is missing, except under CI=true, where a skip would hide
// a gap in coverage; a failure for any other error.
func FailOrSkip(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	t.Fatal(err)
}

// Unavailable skips t for a reason of this machine (no privilege to
// mount, no pseudo-terminal) locally, and fails it under CI=true, where
// every test must run: a test is never hidden from CI.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// cleanEnv is the environment servers start with: enough to run, and nothing
// from the caller's environment that could reconfigure them.
func cleanEnv(extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	return append(env, extra...)
}

// Tool returns the path of a client program the tests drive (oras, helm,
// skopeo...), found like the servers' binaries; its absence is handled as
// theirs is. install says how scripts/test.sh installs it.
func Tool(t testing.TB, name, install string) string {
	t.Helper()
	path, err := findBinary(name)
	if err != nil {
		FailOrSkip(t, fmt.Errorf("%w: %v (install: %s)", ErrNotInstalled, err, install))
	}
	return path
}

// DieWithParent makes the kernel kill cmd's process when the test binary
// dies, on Linux, as the servers started here are: for a test's own
// daemons.
func DieWithParent(cmd *exec.Cmd) { cmd.SysProcAttr = dieWithParent() }
