package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lading-registry/lading/logging"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/server"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

const (
	readHeaderTimeout = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	// shutdownTimeout bounds how long in-flight requests (a large layer
	// upload, say) may finish after SIGINT or SIGTERM.
	shutdownTimeout = 30 * time.Second
)

// serveConfig is what serve needs to start; the flags fill it today, a
// configuration file may later.
type serveConfig struct {
	root string
	addr string
}

func runServe(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("lading serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg serveConfig
	fs.StringVar(&cfg.root, "root", "./lading-data", "`directory` holding all registry data; created if missing")
	fs.StringVar(&cfg.addr, "addr", ":5000", "`host:port` to listen on")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lading serve: unexpected arguments %q\n", fs.Args())
		return 2
	}
	log, err := logging.New(stderr, "info", "text")
	if err != nil {
		fmt.Fprintf(stderr, "lading serve: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Once the first signal starts the drain, a second one ends the
	// process at once, as an impatient operator expects.
	context.AfterFunc(ctx, stop)
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("lading serve failed", "error", err)
		return 1
	}
	return 0
}

// serve runs the registry until ctx ends, then drains in-flight requests.
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger) error {
	fsd, err := filesystem.New(cfg.root)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	reg := registry.New(driver.Instrument(fsd, nil), registry.Options{Logger: log})
	srv := &http.Server{
		Handler:           logging.AccessLog(log, server.New(reg, server.Options{Logger: log}), server.RouteLabels),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	log.Info("lading serving", "addr", ln.Addr().String(), "root", cfg.root, "version", version)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
