package main

import (
	"log/slog"

	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/metrics"
	"github.com/lading-registry/lading/proxy"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/server"
	"github.com/lading-registry/lading/tracing"
)

// newMirror returns the upstream of a pull-through cache, or nil (the
// interface's own, not a nil *proxy.Mirror in it) when proxy.remoteurl is
// empty, and what ends it once requests are done.
func newMirror(cfg config.Proxy, reg *registry.Registry, log *slog.Logger, m *metrics.Metrics, tr *tracing.Tracing) (server.Mirror, func(), error) {
	if cfg.RemoteURL == "" {
		return nil, func() {}, nil
	}
	mirror, err := proxy.New(reg, proxy.Options{
		RemoteURL:  cfg.RemoteURL,
		Username:   cfg.Username,
		Password:   cfg.Password.Reveal(),
		TagTTL:     cfg.TagTTL,
		EvictAfter: cfg.EvictAfter,
		Logger:     log,
		Observer:   m.Proxy(),
		Transport:  tr.Transport(proxy.NewTransport()),
	})
	if err != nil {
		return nil, nil, err
	}
	log.Info("pull-through cache", "upstream", cfg.RemoteURL, "tagttl", cfg.TagTTL, "evictafter", cfg.EvictAfter, "user", cfg.Username)
	return mirror, mirror.Close, nil
}
