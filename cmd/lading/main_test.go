package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		stdout     string
		stderr     string
		emptyError bool
	}{
		{args: nil, code: 2, stderr: "Usage:"},
		{args: []string{"help"}, code: 0, stdout: "lading serve"},
		{args: []string{"--help"}, code: 0, stdout: "Usage:"},
		{args: []string{"version"}, code: 0, stdout: "lading dev\ncommit ", emptyError: true},
		{args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{args: []string{"serve", "--nope"}, code: 2, stderr: "flag provided but not defined"},
		{args: []string{"serve", "extra"}, code: 2, stderr: "unexpected arguments"},
		{args: []string{"serve", "-h"}, code: 0, stderr: "-root directory"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.code {
				t.Errorf("exit %d, want %d; stderr %s", code, tt.code, &stderr)
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q lacks %q", &stdout, tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", &stderr, tt.stderr)
			}
			if tt.emptyError && stderr.Len() > 0 {
				t.Errorf("stderr %q", &stderr)
			}
		})
	}
	var stdout bytes.Buffer
	run([]string{"version"}, &stdout, io.Discard)
	if !strings.Contains(stdout.String(), runtime.Version()) {
		t.Errorf("version lacks the Go version: %q", &stdout)
	}
}

func TestVersionFromLinker(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "v1.2.3", "abc123"
	var stdout bytes.Buffer
	printVersion(&stdout)
	if !strings.HasPrefix(stdout.String(), "lading v1.2.3\ncommit abc123\n") {
		t.Fatalf("%q", &stdout)
	}
}

func TestServeStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	root := filepath.Join(t.TempDir(), "data")
	go func() {
		done <- serve(ctx, serveConfig{root: root, addr: "127.0.0.1:0"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after cancellation")
	}
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("root not created: %v", err)
	}
}

func TestServeFailsOnBadRoot(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run([]string{"serve", "--root", file, "--addr", "127.0.0.1:0"}, io.Discard, &stderr); code != 1 {
		t.Fatalf("exit %d; stderr %s", code, &stderr)
	}
}
