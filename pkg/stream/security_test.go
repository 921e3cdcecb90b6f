package stream

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const secPassword = "s3cr3t-Pa55word-never-printed"

func TestSecurityValidate(t *testing.T) {
	tests := []struct {
		name string
		sasl SASL
		err  string // empty: valid
	}{
		{name: "zero"},
		{name: "plain", sasl: SASL{Mechanism: "PLAIN", User: "u", Password: secPassword}},
		{name: "scram-256 lower case", sasl: SASL{Mechanism: "scram-sha-256", User: "u", Password: secPassword}},
		{name: "scram-512", sasl: SASL{Mechanism: SASLScramSHA512, User: "u", Password: secPassword}},
		{name: "user without mechanism", sasl: SASL{User: "u"}, err: "needs a SASL mechanism"},
		{name: "password without mechanism", sasl: SASL{Password: secPassword}, err: "needs a SASL mechanism"},
		{name: "mechanism without user", sasl: SASL{Mechanism: "PLAIN", Password: secPassword}, err: "PLAIN needs a user"},
		{name: "mechanism without password", sasl: SASL{Mechanism: "SCRAM-SHA-256", User: "u"}, err: "SCRAM-SHA-256 needs a password"},
		{name: "unknown mechanism", sasl: SASL{Mechanism: "GSSAPI", User: "u", Password: secPassword}, err: `unknown SASL mechanism "GSSAPI"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sec := Security{SASL: tc.sasl}
			err := sec.Validate()
			sc := sarama.NewConfig()
			applyErr := sec.Apply(sc)
			if tc.err == "" {
				require.NoError(t, err)
				require.NoError(t, applyErr)
				return
			}
			require.ErrorContains(t, err, tc.err)
			require.NotContains(t, err.Error(), secPassword)
			require.Equal(t, err, applyErr)
			require.False(t, sc.Net.SASL.Enable, "Apply must not change a config on error")
		})
	}
}

func TestSecurityApply(t *testing.T) {
	t.Run("zero changes nothing", func(t *testing.T) {
		sc := sarama.NewConfig()
		require.NoError(t, Security{}.Apply(sc))
		require.Equal(t, sarama.NewConfig().Net, sc.Net)
		require.False(t, Security{}.Enabled())
	})
	t.Run("TLS", func(t *testing.T) {
		tc := &tls.Config{ServerName: "kafka.example", MinVersion: tls.VersionTLS12}
		sc := sarama.NewConfig()
		sec := Security{TLS: tc}
		require.True(t, sec.Enabled())
		require.NoError(t, sec.Apply(sc))
		require.True(t, sc.Net.TLS.Enable)
		require.Equal(t, "kafka.example", sc.Net.TLS.Config.ServerName)
		require.NotSame(t, tc, sc.Net.TLS.Config, "the config is cloned")
		require.False(t, sc.Net.SASL.Enable)
		require.NoError(t, sc.Validate())
	})
	for _, mech := range []string{SASLPlain, SASLScramSHA256, "scram-sha-512"} {
		t.Run(mech, func(t *testing.T) {
			sc := sarama.NewConfig()
			require.NoError(t, Security{SASL: SASL{Mechanism: mech, User: "alice", Password: secPassword}}.Apply(sc))
			require.True(t, sc.Net.SASL.Enable)
			require.True(t, sc.Net.SASL.Handshake)
			require.Equal(t, sarama.SASLMechanism(strings.ToUpper(mech)), sc.Net.SASL.Mechanism)
			require.Equal(t, "alice", sc.Net.SASL.User)
			require.Equal(t, secPassword, sc.Net.SASL.Password)
			require.Equal(t, mech != SASLPlain, sc.Net.SASL.SCRAMClientGeneratorFunc != nil)
			require.NoError(t, sc.Validate(), "sarama accepts the result")
		})
	}
}

// TestSecurityNeverPrintsThePassword formats a Security every way a log
// line or an error might.
func TestSecurityNeverPrintsThePassword(t *testing.T) {
	sec := Security{TLS: &tls.Config{MinVersion: tls.VersionTLS12}, SASL: SASL{Mechanism: "SCRAM-SHA-512", User: "alice", Password: secPassword}}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("connecting", "security", sec, "sasl", sec.SASL)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("connecting", "security", sec, "sasl", sec.SASL)
	for _, s := range []string{
		buf.String(),
		fmt.Sprint(sec), fmt.Sprintf("%v %+v %s", sec, sec, sec),
		fmt.Sprint(sec.SASL), fmt.Sprintf("%v %+v %#v %s", sec.SASL, sec.SASL, sec.SASL, sec.SASL),
		fmt.Sprintf("%v %+v", &sec, &sec.SASL),
	} {
		require.NotContains(t, s, secPassword)
	}
	require.Equal(t, `TLS, SASL SCRAM-SHA-512 user "alice"`, sec.String())
	require.Equal(t, "plaintext", Security{}.String())
	require.Contains(t, fmt.Sprintf("%#v", sec.SASL), "<redacted>")
}

func TestWithSecurityOption(t *testing.T) {
	t.Run("invalid settings fail NewApp without the password", func(t *testing.T) {
		_, err := NewApp(secTopology(t, "in", "out"), Brokers("127.0.0.1:1"), ApplicationID("a"),
			WithSecurity(Security{SASL: SASL{Mechanism: "NOPE", User: "u", Password: secPassword}}))
		require.ErrorContains(t, err, "unknown SASL mechanism")
		require.NotContains(t, err.Error(), secPassword)
	})
	t.Run("composes with SaramaConfig in either order", func(t *testing.T) {
		sec := WithSecurity(Security{SASL: SASL{Mechanism: "PLAIN", User: "u", Password: secPassword}})
		custom := SaramaConfig(func(sc *sarama.Config) { sc.ClientID = "custom"; sc.Net.SASL.User = "overridden" })
		for _, opts := range [][]Opt{{sec, custom}, {custom, sec}} {
			c := defaultConfig()
			for _, o := range append(opts, ApplicationID("a")) {
				o.apply(&c)
			}
			require.NoError(t, c.validate(false))
			sc := sarama.NewConfig()
			c.sarama(sc)
			require.Equal(t, "custom", sc.ClientID)
			require.True(t, sc.Net.SASL.Enable)
			require.Equal(t, "u", sc.Net.SASL.User, "security is applied last")
		}
	})
	t.Run("SaramaConfig alone still replaces", func(t *testing.T) {
		c := defaultConfig()
		SaramaConfig(func(sc *sarama.Config) { sc.ClientID = "one" }).apply(&c)
		SaramaConfig(func(sc *sarama.Config) { sc.ClientID = "two" }).apply(&c)
		sc := sarama.NewConfig()
		c.sarama(sc)
		require.Equal(t, "two", sc.ClientID)
		require.False(t, sc.Net.SASL.Enable)
	})
}

func TestTLSFiles(t *testing.T) {
	pki := newSecPKI(t)
	t.Run("CA, certificate and key", func(t *testing.T) {
		tc, err := TLSFiles{CAFile: pki.caFile, CertFile: pki.clientCertFile, KeyFile: pki.clientKeyFile, ServerName: "x"}.Config()
		require.NoError(t, err)
		require.NotNil(t, tc.RootCAs)
		require.Len(t, tc.Certificates, 1)
		require.Equal(t, "x", tc.ServerName)
		require.Equal(t, uint16(tls.VersionTLS12), tc.MinVersion)
		require.False(t, tc.InsecureSkipVerify)
	})
	t.Run("system roots", func(t *testing.T) {
		tc, err := TLSFiles{InsecureSkipVerify: true}.Config()
		require.NoError(t, err)
		require.Nil(t, tc.RootCAs)
		require.True(t, tc.InsecureSkipVerify)
	})
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	for _, tc := range []struct {
		name  string
		files TLSFiles
		err   string
	}{
		{"missing CA", TLSFiles{CAFile: "/nonexistent/ca.pem"}, "no such file"},
		{"CA not PEM", TLSFiles{CAFile: notPEM}, "holds no PEM certificate"},
		{"cert without key", TLSFiles{CertFile: pki.clientCertFile}, "needs its key file"},
		{"key without cert", TLSFiles{KeyFile: pki.clientKeyFile}, "needs its certificate file"},
		{"key does not match", TLSFiles{CertFile: pki.clientCertFile, KeyFile: pki.serverKeyFile}, "private key does not match"},
		{"key not PEM", TLSFiles{CertFile: pki.clientCertFile, KeyFile: notPEM}, "loading TLS client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.files.Config()
			require.ErrorContains(t, err, tc.err)
			key, _ := os.ReadFile(pki.clientKeyFile)
			require.NotContains(t, err.Error(), string(key))
		})
	}
}

// TestIntegrationSecurity runs an App with WithSecurity against an
// in-process kfake broker that demands SASL, TLS or both: the App must
// create its internal topics, consume, produce and commit through secured
// connections only.
func TestIntegrationSecurity(t *testing.T) {
	pki := newSecPKI(t)
	clientTLS, err := TLSFiles{CAFile: pki.caFile}.Config()
	require.NoError(t, err)
	mutualTLS, err := TLSFiles{CAFile: pki.caFile, CertFile: pki.clientCertFile, KeyFile: pki.clientKeyFile}.Config()
	require.NoError(t, err)

	tests := []struct {
		name     string
		mech     string // SASL mechanism the broker has the user for; empty for none
		serverTL *tls.Config
		client   Security
	}{
		{name: "PLAIN", mech: SASLPlain, client: Security{SASL: SASL{Mechanism: SASLPlain, User: "alice", Password: secPassword}}},
		{name: "SCRAM-SHA-256", mech: SASLScramSHA256, client: Security{SASL: SASL{Mechanism: SASLScramSHA256, User: "alice", Password: secPassword}}},
		{name: "SCRAM-SHA-512", mech: SASLScramSHA512, client: Security{SASL: SASL{Mechanism: SASLScramSHA512, User: "alice", Password: secPassword}}},
		{name: "TLS", serverTL: pki.serverTLS(false), client: Security{TLS: clientTLS}},
		{name: "mutual TLS and SCRAM-SHA-512", mech: SASLScramSHA512, serverTL: pki.serverTLS(true),
			client: Security{TLS: mutualTLS, SASL: SASL{Mechanism: SASLScramSHA512, User: "alice", Password: secPassword}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addrs, _ := startSecBroker(t, tc.mech, tc.serverTL)
			secCheckRefused(t, addrs, tc.client)
			secRunWordCount(t, addrs, tc.client)
		})
	}
}

// TestIntegrationSecurityFailures checks that wrong credentials and an
// untrusted broker certificate fail at once, with an error that says why
// and holds no password.
func TestIntegrationSecurityFailures(t *testing.T) {
	pki := newSecPKI(t)
	// kfake drops the connection on a failed login; Apache Kafka first
	// answers SASL_AUTHENTICATION_FAILED. Both must fail at once.
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		t.Run("wrong password "+mech, func(t *testing.T) {
			addrs, _ := startSecBroker(t, mech, nil)
			err := secConnect(t, addrs, Security{SASL: SASL{Mechanism: mech, User: "alice", Password: "wrong-" + secPassword}})
			require.Error(t, err)
			require.NotContains(t, err.Error(), secPassword)
		})
	}
	t.Run("wrong password, answered as Apache Kafka does", func(t *testing.T) {
		addrs, cluster := startSecBroker(t, SASLPlain, nil)
		cluster.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
			cluster.KeepControl()
			auth := req.(*kmsg.SASLAuthenticateRequest)
			if parts := strings.SplitN(string(auth.SASLAuthBytes), "\x00", 3); len(parts) == 3 && parts[2] == secPassword {
				return nil, nil, false // right password: kfake logs in
			}
			resp := auth.ResponseKind().(*kmsg.SASLAuthenticateResponse)
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := "Authentication failed: Invalid username or password"
			resp.ErrorMessage = &msg
			return resp, nil, true
		})
		err := secConnect(t, addrs, Security{SASL: SASL{Mechanism: SASLPlain, User: "alice", Password: "wrong-" + secPassword}})
		require.ErrorIs(t, err, sarama.ErrSASLAuthenticationFailed)
		require.ErrorContains(t, err, "Invalid username or password")
		require.NotContains(t, err.Error(), secPassword)
		require.NoError(t, secConnect(t, addrs, Security{SASL: SASL{Mechanism: SASLPlain, User: "alice", Password: secPassword}}))
	})
	t.Run("wrong mechanism", func(t *testing.T) {
		addrs, _ := startSecBroker(t, SASLScramSHA256, nil)
		err := secConnect(t, addrs, Security{SASL: SASL{Mechanism: SASLScramSHA512, User: "alice", Password: secPassword}})
		require.Error(t, err)
		require.NotContains(t, err.Error(), secPassword)
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		addrs, _ := startSecBroker(t, "", pki.serverTLS(false))
		// System roots: the test CA is not among them.
		system, err := TLSFiles{}.Config()
		require.NoError(t, err)
		err = secConnect(t, addrs, Security{TLS: system})
		require.Error(t, err)
		var unknown x509.UnknownAuthorityError
		require.True(t, errors.As(err, &unknown), "got %v", err)
	})
}

// secConnect opens a client with sec and reports how that went; a failure
// must come at once, not after retries.
func secConnect(t *testing.T, addrs []string, sec Security) error {
	t.Helper()
	sc := secSaramaConfig()
	require.NoError(t, sec.Apply(sc))
	start := time.Now()
	client, err := sarama.NewClient(addrs, sc)
	require.Less(t, time.Since(start), 10*time.Second, "a login failure is not retried for long")
	if err == nil {
		require.NoError(t, client.Close())
	}
	return err
}

func secSaramaConfig() *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Net.DialTimeout = 3 * time.Second
	sc.Metadata.Retry.Max = 1
	sc.Metadata.Retry.Backoff = 100 * time.Millisecond
	sc.Producer.Return.Successes = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	return sc
}

// startSecBroker starts a one-node kfake cluster that requires SASL with
// user alice (when mech is set) and TLS (when tc is set).
func startSecBroker(t *testing.T, mech string, tc *tls.Config) ([]string, *kfake.Cluster) {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1)}
	if mech != "" {
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser(mech, "alice", secPassword))
	}
	if tc != nil {
		opts = append(opts, kfake.TLS(tc))
	}
	c, err := kfake.NewCluster(opts...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs(), c
}

// secCheckRefused makes sure the broker really demands what the test
// claims: a client without the security settings must fail.
func secCheckRefused(t *testing.T, addrs []string, sec Security) {
	t.Helper()
	sc := secSaramaConfig()
	sc.Net.DialTimeout = time.Second
	sc.Net.ReadTimeout = 2 * time.Second
	if sec.TLS != nil {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = sec.TLS.Clone()
	}
	if sec.SASL.Mechanism == "" && sec.TLS != nil {
		sc.Net.TLS.Enable = false // TLS-only broker: plaintext must fail
	}
	client, err := sarama.NewClient(addrs, sc)
	if err == nil {
		client.Close()
	}
	require.Error(t, err, "a client without %v must be refused", sec)
}

func secTopology(t *testing.T, in, out string) *Topology {
	t.Helper()
	b := NewBuilder()
	src := Source(b, in, String(), String())
	counts := Count(GroupBy(src, func(_, w string) string { return w },
		Grouped[string, string]{Name: "by-word", KeySerde: String(), ValueSerde: String()}),
		Materialized[string, int64]{StoreName: "counts"})
	counts.ToStream().To(out, String(), Int64())
	top, err := b.Build()
	require.NoError(t, err)
	return top
}

// secRunWordCount produces words, runs a counting App (repartition and
// changelog topics: admin, consumer group, producer) with sec, and waits for
// the right counts in the output topic.
func secRunWordCount(t *testing.T, addrs []string, sec Security) {
	t.Helper()
	in, out := "words", "counts"
	sc := secSaramaConfig()
	require.NoError(t, sec.Apply(sc))
	admin, err := sarama.NewClusterAdmin(addrs, sc)
	require.NoError(t, err)
	for _, topic := range []string{in, out} {
		require.NoError(t, admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false))
	}
	require.NoError(t, admin.Close())

	producer, err := sarama.NewSyncProducer(addrs, sc)
	require.NoError(t, err)
	want := map[string]int64{}
	for i := range 30 {
		w := fmt.Sprintf("w%d", i%3)
		want[w]++
		_, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder(w), Value: sarama.StringEncoder(w)})
		require.NoError(t, err)
	}
	require.NoError(t, producer.Close())

	app, err := NewApp(secTopology(t, in, out), Brokers(addrs...), ApplicationID("secure-app"),
		CommitInterval(100*time.Millisecond), Logger(slog.New(slog.DiscardHandler)), WithSecurity(sec))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- app.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-errc:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("app did not stop")
		}
	}()

	consumer, err := sarama.NewConsumer(addrs, sc)
	require.NoError(t, err)
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(out, 0, sarama.OffsetOldest)
	require.NoError(t, err)
	defer pc.Close()
	got := map[string]int64{}
	timeout := time.After(60 * time.Second)
	for !secCountsEqual(got, want) {
		select {
		case m := <-pc.Messages():
			v, err := Int64().Deserialize(m.Value)
			require.NoError(t, err)
			got[string(m.Key)] = v
		case err := <-errc:
			t.Fatalf("app stopped: %v", err)
		case <-timeout:
			t.Fatalf("counts %v, want %v", got, want)
		}
	}
}

func secCountsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// secPKI is a throw-away CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files.
type secPKI struct {
	caPool                        *x509.CertPool
	server                        tls.Certificate
	caFile                        string
	clientCertFile, clientKeyFile string
	serverKeyFile                 string
}

func newSecPKI(t *testing.T) *secPKI {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return k
	}
	serial := int64(0)
	sign := func(tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *x509.Certificate {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
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
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		require.NoError(t, err)
		return der
	}

	caKey := newKey()
	ca := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "emostream test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, caKey, nil, nil)
	serverKey := newKey()
	server := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		serverKey, ca, caKey)
	clientKey := newKey()
	client := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "alice"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, clientKey, ca, caKey)

	p := &secPKI{caPool: x509.NewCertPool()}
	p.caPool.AddCert(ca)
	p.server = tls.Certificate{Certificate: [][]byte{server.Raw}, PrivateKey: serverKey}
	p.caFile = write("ca.pem", "CERTIFICATE", ca.Raw)
	p.clientCertFile = write("client.pem", "CERTIFICATE", client.Raw)
	p.clientKeyFile = write("client.key", "PRIVATE KEY", keyDER(clientKey))
	p.serverKeyFile = write("server.key", "PRIVATE KEY", keyDER(serverKey))
	return p
}

// serverTLS is the broker's TLS configuration; with clientAuth it demands a
// client certificate signed by the test CA.
func (p *secPKI) serverTLS(clientAuth bool) *tls.Config {
	tc := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if clientAuth {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		tc.ClientCAs = p.caPool
	}
	return tc
}
