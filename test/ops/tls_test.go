package ops

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lading-registry/lading/internal/imagetest"
)

// registryHost is the name the server certificate is issued for.
// go-containerregistry talks plain HTTP to 127.0.0.1 and localhost, as
// Docker does, so the tests reach the loopback listener under this name
// through a dialer of their own.
const registryHost = "lading.test"

// ca is a certificate authority made for one test.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, cn string) *ca {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &ca{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// issue returns a certificate and key in PEM, for a server (with its DNS
// name and loopback address) or a client.
func (c *ca) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.DNSNames = []string{cn}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// protoRecorder is an HTTP/2-capable transport that trusts one CA, dials
// registryHost at a loopback address, and notes the protocol of every
// response.
type protoRecorder struct {
	base   *http.Transport
	mu     sync.Mutex
	protos map[string]int
}

func newTransport(t *testing.T, trust *ca, addr string, client *tls.Certificate) *protoRecorder {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(trust.cert)
	cfg := &tls.Config{RootCAs: roots, ServerName: registryHost}
	if client != nil {
		// Sent whoever the server says it trusts: with Certificates, Go
		// would keep quiet about one from an unlisted CA.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return client, nil }
	}
	var d net.Dialer
	return &protoRecorder{
		protos: map[string]int{},
		base: &http.Transport{
			TLSClientConfig:   cfg,
			ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
		},
	}
}

func (p *protoRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(r)
	if err == nil {
		p.mu.Lock()
		p.protos[resp.Proto]++
		p.mu.Unlock()
	}
	return resp, err
}

// onlyHTTP2 checks that responses were seen and all came over HTTP/2.
func (p *protoRecorder) onlyHTTP2(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.protos) != 1 || p.protos["HTTP/2.0"] == 0 {
		t.Errorf("responses by protocol %v, want HTTP/2.0 only", p.protos)
	}
}

// TestTLS serves HTTPS from generated certificate files and pushes and
// pulls an image over it with go-containerregistry.
func TestTLS(t *testing.T) {
	serverCA := newCA(t, "lading test server CA")
	certPEM, keyPEM := serverCA.issue(t, registryHost, x509.ExtKeyUsageServerAuth)
	cert, key := writeFile(t, "server.pem", string(certPEM)), writeFile(t, "server-key.pem", string(keyPEM))
	ref := registryHost + ":443/ops/tls:v1"

	t.Run("https and http2", func(t *testing.T) {
		p, addr := startServe(t, nil, "--root", t.TempDir(), "--tls-cert", cert, "--tls-key", key)
		tr := newTransport(t, serverCA, addr, nil)
		p.waitFor(t, &http.Client{Transport: tr}, "https://"+registryHost+"/v2/")
		pushAndPull(t, ref, tr)
		tr.onlyHTTP2(t)

		// The certificate's end is there for an alert to watch.
		block, _ := pem.Decode(certPEM)
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		m := scrapeWith(t, &http.Client{Transport: tr}, "https://"+registryHost+"/metrics")
		if got := m.sum("lading_tls_certificate_expiry_timestamp_seconds"); got != float64(leaf.NotAfter.Unix()) {
			t.Errorf("certificate expiry metric %v, want %d", got, leaf.NotAfter.Unix())
		}

		// A client that does not trust the CA is refused by its own TLS
		// stack, and plain HTTP gets no registry answer.
		if _, err := http.Get("https://" + addr + "/v2/"); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("a client without the CA: %v", err)
		}
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("plain HTTP on the TLS listener: %s", resp.Status)
			}
			resp.Body.Close()
		}
		if !strings.Contains(p.output(), "tls=true") {
			t.Errorf("start line does not say tls=true")
		}
		if p.stop(t) != 0 {
			t.Errorf("exit status %d after SIGTERM", p.cmd.ProcessState.ExitCode())
		}
	})

	t.Run("drain over http2", func(t *testing.T) {
		// HTTP/2 drains its own way (GOAWAY, then streams finish): a chunk
		// streaming at SIGTERM must still complete.
		root := t.TempDir()
		p, addr := startServe(t, nil, "--root", root, "--tls-cert", cert, "--tls-key", key)
		client := &http.Client{Transport: newTransport(t, serverCA, addr, nil)}
		base := "https://" + registryHost
		p.waitFor(t, client, base+"/v2/")
		loc := startUpload(t, client, base, "ops/drain2")
		const size = 32 << 20
		answered := make(chan *http.Response, 1)
		go func() {
			resp, err := patch(client, base, loc, newSlowBody(size, 1<<20, 40*time.Millisecond), size)
			if err != nil {
				t.Errorf("PATCH in flight during shutdown: %v", err)
			}
			answered <- resp
		}()
		waitForUploadData(t, root, 4<<20)
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		resp := <-answered
		if resp == nil {
			t.FailNow()
		}
		resp.Body.Close()
		if want := fmt.Sprintf("0-%d", size-1); resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != want || resp.ProtoMajor != 2 {
			t.Fatalf("chunk in flight: %s %s, Range %q, want HTTP/2 202 and %s", resp.Proto, resp.Status, resp.Header.Get("Range"), want)
		}
		if code := p.exit(t, 10*time.Second); code != 0 {
			t.Fatalf("exit status %d after a complete drain", code)
		}
	})

	t.Run("key of another certificate", func(t *testing.T) {
		_, otherKey := serverCA.issue(t, registryHost, x509.ExtKeyUsageServerAuth)
		p := launch(t, nil, "serve", "--addr", "127.0.0.1:0", "--root", t.TempDir(),
			"--tls-cert", cert, "--tls-key", writeFile(t, "other-key.pem", string(otherKey)))
		if code := p.exit(t, 10*time.Second); code != 2 || !strings.Contains(p.output(), "http.tls.cert") {
			t.Fatalf("exit %d:\n%s", code, p.output())
		}
	})

	t.Run("client certificates", func(t *testing.T) {
		clientCA, rogueCA := newCA(t, "lading test client CA"), newCA(t, "someone else's CA")
		// clientca has no flag of its own: set it through the environment.
		env := []string{"LADING_HTTP_TLS_CLIENTCA=" + writeFile(t, "clients.pem", string(clientCA.pem))}
		p, addr := startServe(t, env, "--root", t.TempDir(), "--tls-cert", cert, "--tls-key", key)
		good := keyPair(t, clientCA, "ci-pusher")
		withCert := newTransport(t, serverCA, addr, &good)
		p.waitFor(t, &http.Client{Transport: withCert}, "https://"+registryHost+"/v2/")

		// With TLS 1.3 the client learns of the refusal only as its
		// connection fails; the server's log says why.
		rogue := keyPair(t, rogueCA, "intruder")
		for _, c := range []struct {
			name, why string
			tr        *protoRecorder
		}{
			{"no certificate", "client didn't provide a certificate", newTransport(t, serverCA, addr, nil)},
			{"certificate of another CA", "certificate signed by unknown authority", newTransport(t, serverCA, addr, &rogue)},
		} {
			resp, err := (&http.Client{Transport: c.tr}).Get("https://" + registryHost + "/v2/")
			if err == nil {
				resp.Body.Close()
				t.Errorf("%s: answered %s, want the handshake refused", c.name, resp.Status)
			}
			if !p.logged(c.why, 2*time.Second) {
				t.Errorf("%s: the server log does not say %q", c.name, c.why)
			}
		}
		pushAndPull(t, ref, withCert)
		withCert.onlyHTTP2(t)
		if p.stop(t) != 0 {
			t.Errorf("exit status %d after SIGTERM", p.cmd.ProcessState.ExitCode())
		}
	})
}

func keyPair(t *testing.T, c *ca, cn string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM := c.issue(t, cn, x509.ExtKeyUsageClientAuth)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// pushAndPull pushes a random image to ref and reads it back whole.
func pushAndPull(t *testing.T, ref string, tr http.RoundTripper) {
	t.Helper()
	img := pushRandom(t, ref, remote.WithTransport(tr))
	r, _ := name.ParseReference(ref)
	got, err := remote.Image(r, remote.WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	imagetest.Same(t, img, got)
}
