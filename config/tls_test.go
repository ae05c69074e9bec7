package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA issues certificates for a TLS test and writes them as PEM files.
type testCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	ca := &testCA{t: t, dir: t.TempDir()}
	ca.cert, ca.key = ca.issue("test CA", nil, true)
	return ca
}

// issue makes a certificate for name signed by the CA (self-signed when
// the CA has none yet).
func (ca *testCA) issue(name string, ips []net.IP, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           ips,
		IsCA:                  isCA,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	parent, signer := tmpl, key
	if ca.cert != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		ca.t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		ca.t.Fatal(err)
	}
	return cert, key
}

// files issues a certificate for name and writes it and its key.
func (ca *testCA) files(name string, ips ...net.IP) (certFile, keyFile string) {
	cert, key := ca.issue(name, ips, false)
	return ca.write(name, cert, key)
}

func (ca *testCA) write(name string, cert *x509.Certificate, key *ecdsa.PrivateKey) (certFile, keyFile string) {
	certFile = filepath.Join(ca.dir, name+".crt")
	keyFile = filepath.Join(ca.dir, name+".key")
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return certFile, keyFile
}

// serveTLS serves h with cfg as lading serve does (ServeTLS without
// files, which offers HTTP/2) until the test ends, and returns its URL.
func serveTLS(t *testing.T, cfg *tls.Config, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: cfg, ErrorLog: log.New(io.Discard, "", 0)} // refused handshakes are expected
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

func TestTLSServesHTTP2AndRequiresClientCertificates(t *testing.T) {
	ca := newTestCA(t)
	caFile, _ := ca.write("ca", ca.cert, ca.key)
	srvCert, srvKey := ca.files("registry", net.IPv4(127, 0, 0, 1))
	cliCert, cliKey := ca.files("client")

	c, err := Load("", []string{
		"LADING_HTTP_TLS_CERT=" + srvCert,
		"LADING_HTTP_TLS_KEY=" + srvKey,
		"LADING_HTTP_TLS_CLIENTCA=" + caFile,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := c.HTTP.TLS.ServerConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	url := serveTLS(t, serverTLS, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Proto))
	}))

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	get := func(certs []tls.Certificate) (string, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		return resp.Proto, nil
	}

	if _, err := get(nil); err == nil {
		t.Fatal("a client without a certificate was let in")
	}
	pair, err := tls.LoadX509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	proto, err := get([]tls.Certificate{pair})
	if err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	if proto != "HTTP/2.0" {
		t.Errorf("protocol %s, want HTTP/2.0", proto)
	}
}

func TestTLSBadFiles(t *testing.T) {
	ca := newTestCA(t)
	certFile, _ := ca.files("a")
	_, otherKey := ca.files("b")
	notPEM := filepath.Join(ca.dir, "ca.txt")
	os.WriteFile(notPEM, []byte("hello"), 0o600)

	_, err := Load("", []string{"LADING_HTTP_TLS_CERT=" + certFile, "LADING_HTTP_TLS_KEY=" + otherKey}, nil)
	if err == nil || !strings.Contains(err.Error(), "http.tls.cert: with http.tls.key") || !strings.Contains(err.Error(), "env LADING_HTTP_TLS_CERT") {
		t.Errorf("mismatched key: %v", err)
	}
	cCert, cKey := ca.files("c")
	_, err = Load("", []string{
		"LADING_HTTP_TLS_CERT=" + cCert, "LADING_HTTP_TLS_KEY=" + cKey,
		"LADING_HTTP_TLS_CLIENTCA=" + notPEM,
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "http.tls.clientca:") || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("non-PEM client CA: %v", err)
	}
	if cfg, err := (TLS{}).ServerConfig(nil); cfg != nil || err != nil {
		t.Errorf("no TLS configured: %v, %v", cfg, err)
	}
}

// servedSerial is the serial number of the certificate a handshake with
// url gets.
func servedSerial(t *testing.T, url string, roots *x509.CertPool) string {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0].SerialNumber.String()
}

// A renewed certificate is served once its files change, without a
// restart; a renewal caught half-written (a new certificate beside the old
// key) keeps the previous pair in use, and is said once.
func TestTLSCertificateReadAgainWhenRenewed(t *testing.T) {
	certCheckEvery = 0
	t.Cleanup(func() { certCheckEvery = time.Second })
	ca := newTestCA(t)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	certFile, keyFile := ca.files("registry", net.IPv4(127, 0, 0, 1))
	var logs strings.Builder
	cfg, err := TLS{Cert: certFile, Key: keyFile}.ServerConfig(slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	url := serveTLS(t, cfg, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	first := servedSerial(t, url, roots)

	// Half a renewal: the new certificate, the old key.
	renewed, newKey := ca.issue("registry", []net.IP{net.IPv4(127, 0, 0, 1)}, false)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: renewed.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got := servedSerial(t, url, roots); got != first {
			t.Fatalf("serial %s while the key is the old one, want the previous %s", got, first)
		}
	}
	if n := strings.Count(logs.String(), "does not load"); n != 1 {
		t.Errorf("the half-written renewal was reported %d times, want once: %s", n, logs.String())
	}

	// The key follows.
	ca.write("registry", renewed, newKey)
	if got := servedSerial(t, url, roots); got != renewed.SerialNumber.String() {
		t.Fatalf("serial %s after the renewal, want %s", got, renewed.SerialNumber)
	}
	if !strings.Contains(logs.String(), "read again") {
		t.Errorf("the reload is not logged: %s", logs.String())
	}
}

// A certificate that has expired, or will within two weeks, is warned of
// at start.
func TestTLSExpiryWarned(t *testing.T) {
	ca := newTestCA(t)
	const day = 24 * time.Hour
	for _, tc := range []struct {
		life, end time.Duration
		warn      string
	}{
		{90 * day, -time.Hour, "has expired"},
		{90 * day, 3 * day, "expires soon"},
		{90 * day, 60 * day, ""},
		{6 * day, 2 * day, ""}, // renewed with a third of its life left: on time
		{6 * day, day, "expires soon"},
	} {
		certFile, keyFile := ca.ending(tc.life, tc.end)
		var logs strings.Builder
		if _, err := (TLS{Cert: certFile, Key: keyFile}).ServerConfig(slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
			t.Fatal(err)
		}
		if got := logs.String(); tc.warn == "" && got != "" || tc.warn != "" && !strings.Contains(got, tc.warn) {
			t.Errorf("certificate of %v ending in %v: log %q, want %q", tc.life, tc.end, got, tc.warn)
		}
	}
}

// A renewal that keeps failing to load leaves the old certificate served:
// its approaching end is still warned of, once a day.
func TestTLSExpiryWarnedWhileRenewalFails(t *testing.T) {
	certCheckEvery = 0
	t.Cleanup(func() { certCheckEvery = time.Second })
	ca := newTestCA(t)
	certFile, keyFile := ca.ending(90*24*time.Hour, 24*time.Hour)
	var logs strings.Builder
	certs, err := newCertReloader(certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	renewed, _ := ca.issue("registry", nil, false)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: renewed.Raw}), 0o600)
	for day := range 3 {
		certs.mu.Lock()
		certs.warnedAt = certs.warnedAt.Add(-24 * time.Hour)
		certs.mu.Unlock()
		if _, err := certs.get(&tls.ClientHelloInfo{}); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(logs.String(), "expires soon"); n != day+2 {
			t.Fatalf("day %d: %d expiry warnings, want %d: %s", day, n, day+2, logs.String())
		}
	}
}

// ending writes a certificate of the given life that ends in end, and its
// key.
func (ca *testCA) ending(life, end time.Duration) (certFile, keyFile string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "registry"},
		NotBefore: time.Now().Add(end - life), NotAfter: time.Now().Add(end)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return ca.write("expiring", cert, key)
}
