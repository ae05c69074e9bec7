package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/golang-jwt/jwt/v5"
)

// SigningKey signs the built-in token server's tokens.
type SigningKey struct {
	private any // ed25519.PrivateKey, *ecdsa.PrivateKey or *rsa.PrivateKey, as jwt wants them
	method  jwt.SigningMethod
	kid     string
	public  *KeySet
}

// GenerateSigningKey makes a fresh Ed25519 key. Tokens it signs die with
// the process, and replicas each have their own: a setup with several
// replicas, or that wants tokens to survive a restart, must load one shared
// key file with LoadSigningKey instead.
func GenerateSigningKey() (*SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return newSigningKey(priv)
}

// LoadSigningKey reads an Ed25519, ECDSA (P-256, P-384, P-521) or RSA
// private key from a PEM file: PKCS #8 ("PRIVATE KEY", as from
// `openssl genpkey -algorithm ed25519`), SEC 1 ("EC PRIVATE KEY") or
// PKCS #1 ("RSA PRIVATE KEY").
func LoadSigningKey(path string) (*SigningKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			return nil, fmt.Errorf("%s: no PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY in PEM", path)
		}
		var key any
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err == nil {
			var k *SigningKey
			if k, err = newSigningKey(key); err == nil {
				return k, nil
			}
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
}

func newSigningKey(key any) (*SigningKey, error) {
	k := &SigningKey{private: key}
	var pub crypto.PublicKey
	switch key := key.(type) {
	case ed25519.PrivateKey:
		k.method, pub = jwt.SigningMethodEdDSA, key.Public()
	case *ecdsa.PrivateKey:
		switch key.Curve {
		case elliptic.P256():
			k.method = jwt.SigningMethodES256
		case elliptic.P384():
			k.method = jwt.SigningMethodES384
		case elliptic.P521():
			k.method = jwt.SigningMethodES512
		default:
			return nil, fmt.Errorf("unsupported ECDSA curve %s", key.Curve.Params().Name)
		}
		pub = key.Public()
	case *rsa.PrivateKey:
		if key.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA signing key of %d bits; want at least 2048", key.N.BitLen())
		}
		k.method, pub = jwt.SigningMethodRS256, key.Public()
	default:
		return nil, fmt.Errorf("signing key is %T; want Ed25519, ECDSA or RSA", key)
	}
	var err error
	if k.public, err = NewKeySet(pub); err != nil {
		return nil, err
	}
	k.kid, _ = thumbprint(pub)
	return k, nil
}

// Public is the key set that verifies this key's tokens, also what a JWKS
// endpoint publishes.
func (k *SigningKey) Public() *KeySet { return k.public }

func (k *SigningKey) sign(claims jwt.Claims) (string, error) {
	t := jwt.NewWithClaims(k.method, claims)
	t.Header["kid"] = k.kid
	return t.SignedString(k.private)
}
