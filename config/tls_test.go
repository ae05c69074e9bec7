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
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
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
	serverTLS, err := c.HTTP.TLS.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Proto))
	}))
	srv.TLS = serverTLS
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	get := func(certs []tls.Certificate) (string, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
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
	if cfg, err := (TLS{}).ServerConfig(); cfg != nil || err != nil {
		t.Errorf("no TLS configured: %v, %v", cfg, err)
	}
}
