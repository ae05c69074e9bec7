package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestProxyFromEnv(t *testing.T) {
	const secret = "upstream-very-secret"
	c, err := Load("", []string{
		"LADING_PROXY_REMOTEURL=https://registry-1.docker.io",
		"LADING_PROXY_USERNAME=mirror",
		"LADING_PROXY_PASSWORD=" + secret,
		"LADING_PROXY_TAGTTL=30s",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Proxy
	if p.RemoteURL != "https://registry-1.docker.io" || p.Username != "mirror" || p.Password.Reveal() != secret || p.TagTTL != 30*time.Second {
		t.Fatalf("proxy from env: %+v", p)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "config", *c, "proxy", p)
	for name, out := range map[string]string{"String": c.String(), "%+v": fmt.Sprintf("%+v", p), "slog": logged.String()} {
		if strings.Contains(out, secret) {
			t.Errorf("%s prints the upstream password: %s", name, out)
		}
	}
	if Default().Proxy.TagTTL != time.Minute || Default().Proxy.RemoteURL != "" {
		t.Fatalf("proxy defaults: %+v", Default().Proxy)
	}
}

func TestProxyValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"not a URL", []string{"LADING_PROXY_REMOTEURL=registry-1.docker.io"}, `proxy.remoteurl: "registry-1.docker.io" is not an http:// or https:// URL`},
		{"credentials in URL", []string{"LADING_PROXY_REMOTEURL=https://u:p@ghcr.io"}, "proxy.remoteurl: must not hold credentials"},
		{"password without user", []string{"LADING_PROXY_REMOTEURL=https://ghcr.io", "LADING_PROXY_PASSWORD=x"}, "proxy.username: must be set together with proxy.password"},
		{"user without mirror", []string{"LADING_PROXY_USERNAME=u", "LADING_PROXY_PASSWORD=x"}, "proxy.remoteurl: must be set with proxy.username"},
		{"negative ttl", []string{"LADING_PROXY_REMOTEURL=https://ghcr.io", "LADING_PROXY_TAGTTL=-1s"}, "proxy.tagttl: -1s must be 0 or more"},
		{"read-only mirror", []string{"LADING_PROXY_REMOTEURL=https://ghcr.io", "LADING_READONLY=true"}, "readonly: excludes proxy.remoteurl"},
		{"immutable tags on a mirror", []string{"LADING_PROXY_REMOTEURL=https://ghcr.io", "LADING_TAGS_IMMUTABLE=v*"}, "tags.immutable: excludes proxy.remoteurl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("", tc.env, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
