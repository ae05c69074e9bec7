package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// ServerConfig returns the listener's TLS configuration, or nil when no
// certificate is configured and the registry serves plain HTTP. With a
// client CA, every client must present a certificate it signed. HTTP/2 is
// offered by net/http's ServeTLS, which adds "h2" to the configuration.
//
// The certificate is read again when its files change, as a renewal by
// certbot or cert-manager leaves them (see certReloader). log, when not
// nil, hears of each reload, of a renewal that does not load, and of a
// certificate that has expired or soon will.
func (t TLS) ServerConfig(log *slog.Logger) (*tls.Config, error) {
	if t.Cert == "" && t.Key == "" {
		return nil, nil
	}
	certs, err := newCertReloader(t.Cert, t.Key, log)
	if err != nil {
		return nil, &Error{Key: "http.tls.cert", Msg: fmt.Sprintf("with http.tls.key: %v", err)}
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.get,
	}
	if t.ClientCA != "" {
		pool, err := loadCertPool(t.ClientCA)
		if err != nil {
			return nil, &Error{Key: "http.tls.clientca", Msg: err.Error()}
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func loadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%q holds no PEM certificate", path)
	}
	return pool, nil
}

// certCheckEvery is how often at most a handshake looks at the
// certificate's files; a variable for the tests.
var certCheckEvery = time.Second

// expiryNotice is how long before its end a certificate is warned of, at
// start and then once a day: two weeks, or the last quarter of a shorter
// life (one renewed with a third of it left, as cert-manager does, is
// never warned of).
func expiryNotice(leaf *x509.Certificate) time.Duration {
	return min(14*24*time.Hour, leaf.NotAfter.Sub(leaf.NotBefore)/4)
}

// certReloader hands handshakes the certificate of two files, read again
// when either changes. A renewal writes them one after the other: a pair
// that does not load (a new certificate beside the old key) leaves the
// previous one in use, and is tried again at the next look.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu       sync.Mutex
	pair     *tls.Certificate
	stamps   [2]fileStamp // of the files the pair was read from
	looked   time.Time
	failed   [2]fileStamp // of the files that last failed to load, reported once
	warnedAt time.Time    // of the latest expiry warning
}

// fileStamp tells a file's versions apart: an atomic replace changes the
// inode, an overwrite the time or size.
type fileStamp struct {
	ino, size int64
	mtime     time.Time
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{ino: inode(fi), size: fi.Size(), mtime: fi.ModTime()}, nil
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log, looked: time.Now()}
	stamps, err := c.stampsNow()
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c.pair, c.stamps = &pair, stamps
	c.noteExpiry(time.Now())
	return c, nil
}

func (c *certReloader) stampsNow() ([2]fileStamp, error) {
	var s [2]fileStamp
	var err error
	if s[0], err = stampOf(c.certFile); err == nil {
		s[1], err = stampOf(c.keyFile)
	}
	return s, err
}

func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.looked) >= certCheckEvery {
		c.looked = now
		c.reload(now)
	}
	return c.pair, nil
}

// reload reads the pair again if its files changed; c.mu is held.
func (c *certReloader) reload(now time.Time) {
	stamps, err := c.stampsNow()
	if err != nil || stamps == c.stamps {
		// A file missing for a moment, as a renewal moves them: keep on.
		c.noteExpiry(now)
		return
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		if stamps != c.failed && c.log != nil {
			c.log.Warn("http.tls.cert changed but does not load with http.tls.key; serving the previous certificate until it does", "cert", c.certFile, "key", c.keyFile, "error", err)
		}
		c.failed = stamps
		c.noteExpiry(now) // the previous one may be ending
		return
	}
	c.pair, c.stamps, c.warnedAt = &pair, stamps, time.Time{}
	if c.log != nil {
		c.log.Info("http.tls.cert read again after a change", "cert", c.certFile)
	}
	c.noteExpiry(now)
}

// noteExpiry warns, at most once a day, of a certificate past its end or
// near it; c.mu is held or c is not shared yet.
func (c *certReloader) noteExpiry(now time.Time) {
	leaf := leafOf(c.pair)
	if c.log == nil || leaf == nil || leaf.NotAfter.Sub(now) > expiryNotice(leaf) || now.Sub(c.warnedAt) < 24*time.Hour {
		return
	}
	end := leaf.NotAfter
	c.warnedAt = now
	if now.After(end) {
		c.log.Warn("http.tls.cert has expired: clients refuse it; renew it (its files are read again when they change)", "cert", c.certFile, "not_after", end)
		return
	}
	c.log.Warn("http.tls.cert expires soon; renew it (its files are read again when they change)", "cert", c.certFile, "not_after", end, "left", end.Sub(now).Round(time.Hour))
}

// leafOf is the pair's leaf certificate; nil when unknown.
func leafOf(pair *tls.Certificate) *x509.Certificate {
	if pair.Leaf != nil || len(pair.Certificate) == 0 {
		return pair.Leaf
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}
