package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
)

// Keys are the public keys tokens may be signed with.
type Keys interface {
	// Lookup returns the keys a token with this key id may be signed with;
	// kid is "" when the token names none.
	Lookup(ctx context.Context, kid string) ([]crypto.PublicKey, error)
}

// KeySet is a fixed set of public keys, each known by its RFC 7638
// thumbprint.
type KeySet struct {
	byKid map[string]crypto.PublicKey
	all   []crypto.PublicKey
}

// NewKeySet makes a KeySet of RSA, ECDSA and Ed25519 public keys.
func NewKeySet(keys ...crypto.PublicKey) (*KeySet, error) {
	s := &KeySet{byKid: map[string]crypto.PublicKey{}}
	for _, k := range keys {
		kid, err := thumbprint(k)
		if err != nil {
			return nil, err
		}
		s.add(kid, k)
	}
	return s, nil
}

func (s *KeySet) add(kid string, k crypto.PublicKey) {
	s.byKid[kid] = k
	s.all = append(s.all, k)
}

// Lookup returns the key of that id. Issuers that name keys their own way
// (libtrust fingerprints, arbitrary ids) still verify: an unknown or absent
// kid is tried against every key, the signature check decides.
func (s *KeySet) Lookup(_ context.Context, kid string) ([]crypto.PublicKey, error) {
	if k, ok := s.byKid[kid]; ok {
		return []crypto.PublicKey{k}, nil
	}
	return s.all, nil
}

// LoadCertBundle reads the token issuer's certificates (or bare public keys)
// from a PEM file. Only the keys are used: trust comes from the file, not
// from a chain.
func LoadCertBundle(path string) (*KeySet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keys []crypto.PublicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var k crypto.PublicKey
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			k = cert.PublicKey
		case "PUBLIC KEY":
			if k, err = x509.ParsePKIXPublicKey(block.Bytes); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		default:
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no CERTIFICATE or PUBLIC KEY in PEM", path)
	}
	s, err := NewKeySet(keys...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// jwk is one JSON Web Key (RFC 7517), public members only.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

var b64 = base64.RawURLEncoding

var curves = map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}

func toJWK(k crypto.PublicKey) (jwk, error) {
	switch k := k.(type) {
	case ed25519.PublicKey:
		return jwk{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(k)}, nil
	case *ecdsa.PublicKey:
		raw, err := k.Bytes()
		if err != nil {
			return jwk{}, err
		}
		n := (len(raw) - 1) / 2
		return jwk{Kty: "EC", Crv: k.Curve.Params().Name, X: b64.EncodeToString(raw[1 : 1+n]), Y: b64.EncodeToString(raw[1+n:])}, nil
	case *rsa.PublicKey:
		return jwk{Kty: "RSA", N: b64.EncodeToString(k.N.Bytes()), E: b64.EncodeToString(big.NewInt(int64(k.E)).Bytes())}, nil
	}
	return jwk{}, fmt.Errorf("unsupported public key type %T", k)
}

func (j jwk) publicKey() (crypto.PublicKey, error) {
	switch j.Kty {
	case "OKP":
		x, err := b64.DecodeString(j.X)
		if err != nil || j.Crv != "Ed25519" || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad OKP key: want Ed25519")
		}
		return ed25519.PublicKey(x), nil
	case "EC":
		curve, ok := curves[j.Crv]
		x, errX := b64.DecodeString(j.X)
		y, errY := b64.DecodeString(j.Y)
		if !ok || errX != nil || errY != nil {
			return nil, fmt.Errorf("bad EC key (crv %q)", j.Crv)
		}
		return ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
	case "RSA":
		n, errN := b64.DecodeString(j.N)
		e, errE := b64.DecodeString(j.E)
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 || len(n) < 256 {
			return nil, errors.New("bad RSA key (or shorter than 2048 bits)")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	}
	return nil, fmt.Errorf("unsupported key type %q", j.Kty)
}

// thumbprint is the RFC 7638 key id: the SHA-256 of the key's required JWK
// members in lexicographic order.
func thumbprint(k crypto.PublicKey) (string, error) {
	j, err := toJWK(k)
	if err != nil {
		return "", err
	}
	var canonical string
	switch j.Kty {
	case "OKP":
		canonical = fmt.Sprintf(`{"crv":%q,"kty":"OKP","x":%q}`, j.Crv, j.X)
	case "EC":
		canonical = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, j.Crv, j.X, j.Y)
	case "RSA":
		canonical = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, j.E, j.N)
	}
	sum := sha256.Sum256([]byte(canonical))
	return b64.EncodeToString(sum[:]), nil
}

// parseJWKS reads a JWK Set, skipping keys not meant for signatures or of
// kinds we do not verify, so one exotic key does not hide the others.
func parseJWKS(data []byte) (*KeySet, error) {
	var set jwkSet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	s := &KeySet{byKid: map[string]crypto.PublicKey{}}
	for _, j := range set.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		k, err := j.publicKey()
		if err != nil {
			continue
		}
		kid := j.Kid
		if kid == "" {
			if kid, err = thumbprint(k); err != nil {
				continue
			}
		}
		s.add(kid, k)
	}
	if len(s.all) == 0 {
		return nil, errors.New("JWKS: no usable signing key")
	}
	return s, nil
}

// MarshalJSON writes the set as a JWK Set, for a token server to publish.
func (s *KeySet) MarshalJSON() ([]byte, error) {
	set := jwkSet{Keys: []jwk{}}
	for kid, k := range s.byKid {
		j, err := toJWK(k)
		if err != nil {
			return nil, err
		}
		j.Kid, j.Use = kid, "sig"
		set.Keys = append(set.Keys, j)
	}
	return json.Marshal(set)
}
