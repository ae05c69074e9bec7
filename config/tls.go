package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// ServerConfig returns the listener's TLS configuration, or nil when no
// certificate is configured and the registry serves plain HTTP. With a
// client CA, every client must present a certificate it signed. HTTP/2 is
// offered by net/http's ServeTLS, which adds "h2" to the configuration.
func (t TLS) ServerConfig() (*tls.Config, error) {
	if t.Cert == "" && t.Key == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, &Error{Key: "http.tls.cert", Msg: fmt.Sprintf("with http.tls.key: %v", err)}
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
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
