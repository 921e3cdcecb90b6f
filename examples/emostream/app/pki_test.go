package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPKI is a throw-away certificate authority for tests, with a broker
// certificate for 127.0.0.1 and a client certificate, written as PEM files.
// It is exported (in a test file) for the external tests of this package.
type TestPKI struct {
	// CAFile, CertFile and KeyFile are the CA certificate and the client's
	// certificate and key.
	CAFile, CertFile, KeyFile string

	caPool *x509.CertPool
	server tls.Certificate
}

// NewTestPKI writes a fresh PKI into a temporary directory.
func NewTestPKI(t *testing.T) *TestPKI {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return k
	}
	serial := int64(0)
	sign := func(tmpl *x509.Certificate, key, parentKey *ecdsa.PrivateKey, parent *x509.Certificate) *x509.Certificate {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		require.NoError(t, err)
		cert, err := x509.ParseCertificate(der)
		require.NoError(t, err)
		return cert
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return path
	}
	caKey, serverKey, clientKey := newKey(), newKey(), newKey()
	ca := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, caKey, nil, nil)
	server := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, serverKey, caKey, ca)
	client := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "alice"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, clientKey, caKey, ca)
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientKey)
	require.NoError(t, err)

	p := &TestPKI{caPool: x509.NewCertPool(), server: tls.Certificate{Certificate: [][]byte{server.Raw}, PrivateKey: serverKey}}
	p.caPool.AddCert(ca)
	p.CAFile = write("ca.pem", "CERTIFICATE", ca.Raw)
	p.CertFile = write("client.pem", "CERTIFICATE", client.Raw)
	p.KeyFile = write("client.key", "PRIVATE KEY", keyDER)
	return p
}

// ServerTLS is the broker's TLS configuration; with clientAuth it demands a
// client certificate signed by the CA.
func (p *TestPKI) ServerTLS(clientAuth bool) *tls.Config {
	tc := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if clientAuth {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		tc.ClientCAs = p.caPool
	}
	return tc
}
