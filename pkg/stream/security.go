package stream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// SASL mechanisms [SASL.Mechanism] accepts. They are the ones Apache Kafka
// offers for user names and passwords.
const (
	// SASLPlain sends the password as it is: use it only over TLS.
	SASLPlain = "PLAIN"
	// SASLScramSHA256 is SCRAM with SHA-256 (RFC 7677): the password never
	// crosses the wire.
	SASLScramSHA256 = "SCRAM-SHA-256"
	// SASLScramSHA512 is SCRAM with SHA-512.
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Security is how an application's Kafka connections are secured: TLS for
// the connection and SASL for the user. The zero value is a plaintext,
// unauthenticated connection, Kafka's default listener.
//
// Give it to the runtime with [WithSecurity], or apply it to a sarama
// configuration of your own with [Security.Apply].
type Security struct {
	// TLS, if not nil, encrypts every connection with this configuration
	// (see [TLSFiles] to load one from PEM files). The configuration is
	// cloned, not shared, by Apply.
	TLS *tls.Config
	// SASL authenticates the connection when its Mechanism is set.
	SASL SASL
}

// SASL is a user name and password for Kafka's SASL authentication.
// Its String and LogValue methods hide the password, so a SASL (or a
// [Security]) may be logged or printed.
type SASL struct {
	// Mechanism is one of [SASLPlain], [SASLScramSHA256] and
	// [SASLScramSHA512] (case does not matter). Empty turns SASL off.
	Mechanism string
	// User is the user name; required with a Mechanism.
	User string
	// Password is the user's password; required with a Mechanism. It is
	// never part of an error message or of the String and LogValue
	// output.
	Password string
}

// Enabled reports whether s turns on TLS or SASL.
func (s Security) Enabled() bool { return s.TLS != nil || s.SASL.Mechanism != "" }

// String describes s without secrets, e.g. "TLS, SASL SCRAM-SHA-256 user
// alice" or "plaintext".
func (s Security) String() string {
	var parts []string
	if s.TLS != nil {
		parts = append(parts, "TLS")
	}
	if s.SASL.Mechanism != "" {
		parts = append(parts, s.SASL.String())
	}
	if len(parts) == 0 {
		return "plaintext"
	}
	return strings.Join(parts, ", ")
}

// LogValue makes slog print s as [Security.String] does.
func (s Security) LogValue() slog.Value { return slog.StringValue(s.String()) }

// String describes the SASL settings without the password.
func (s SASL) String() string {
	if s.Mechanism == "" {
		return "no SASL"
	}
	return fmt.Sprintf("SASL %s user %q", strings.ToUpper(s.Mechanism), s.User)
}

// GoString hides the password from the %#v verb too.
func (s SASL) GoString() string {
	pw := ""
	if s.Password != "" {
		pw = "<redacted>"
	}
	return fmt.Sprintf("stream.SASL{Mechanism:%q, User:%q, Password:%q}", s.Mechanism, s.User, pw)
}

// LogValue makes slog print s without the password.
func (s SASL) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Validate reports settings that cannot work: an unknown mechanism, a
// mechanism without a user or password, or a user or password without a
// mechanism. Its errors never contain the password.
func (s Security) Validate() error {
	var errs []error
	a := s.SASL
	switch mech := strings.ToUpper(a.Mechanism); mech {
	case "":
		if a.User != "" || a.Password != "" {
			errs = append(errs, errors.New("a SASL user or password needs a SASL mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"))
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if a.User == "" {
			errs = append(errs, fmt.Errorf("SASL %s needs a user", mech))
		}
		if a.Password == "" {
			errs = append(errs, fmt.Errorf("SASL %s needs a password", mech))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown SASL mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", a.Mechanism))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stream: invalid security settings: %w", err)
	}
	return nil
}

// Apply validates s and sets sc's TLS and SASL settings from it
// (Net.TLS, Net.SASL with the SCRAM client for the SCRAM mechanisms). With
// the zero Security it changes nothing.
func (s Security) Apply(sc *sarama.Config) error {
	if err := s.Validate(); err != nil {
		return err
	}
	s.apply(sc)
	return nil
}

// apply is Apply for a validated s.
func (s Security) apply(sc *sarama.Config) {
	if s.TLS != nil {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = s.TLS.Clone()
	}
	mech := strings.ToUpper(s.SASL.Mechanism)
	if mech == "" {
		return
	}
	sc.Net.SASL.Enable = true
	sc.Net.SASL.Handshake = true
	sc.Net.SASL.Mechanism = sarama.SASLMechanism(mech)
	sc.Net.SASL.User = s.SASL.User
	sc.Net.SASL.Password = s.SASL.Password
	switch mech {
	case SASLScramSHA256:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
	case SASLScramSHA512:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
	}
}

// scramClient is sarama's SCRAM conversation on top of xdg-go/scram.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

// Begin starts a conversation. The names are not SASLprep-normalised:
// Kafka's brokers store SCRAM credentials of the password's UTF-8 bytes as
// they are, so normalising would break non-ASCII passwords.
func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := c.hash.NewClientUnprepped(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = client.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

func (c *scramClient) Done() bool { return c.conv.Done() }

// TLSFiles names the PEM files of a TLS client configuration, as Kafka
// clients take them (ssl.truststore / ssl.keystore in PEM form).
type TLSFiles struct {
	// CAFile holds the certificates of the authorities that sign the
	// brokers' certificates. Empty means the system's trusted roots.
	CAFile string
	// CertFile and KeyFile are the client's certificate (chain) and
	// private key, for brokers that authenticate clients by certificate
	// (ssl.client.auth=required). Give both or neither.
	CertFile, KeyFile string
	// ServerName overrides the host name the brokers' certificates are
	// checked against (default: the host of each broker address).
	ServerName string
	// InsecureSkipVerify accepts any broker certificate. The connection is
	// still encrypted, but anyone in the path can read it: for tests only.
	InsecureSkipVerify bool
}

// Config loads the files into a TLS configuration (TLS 1.2 or later).
// Errors name the file, never its contents.
func (f TLSFiles) Config() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         f.ServerName,
		InsecureSkipVerify: f.InsecureSkipVerify,
	}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("stream: reading TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("stream: TLS CA file %s holds no PEM certificate", f.CAFile)
		}
		tc.RootCAs = pool
	}
	switch {
	case f.CertFile != "" && f.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("stream: loading TLS client certificate %s and key %s: %w", f.CertFile, f.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case f.CertFile != "":
		return nil, errors.New("stream: a TLS client certificate needs its key file")
	case f.KeyFile != "":
		return nil, errors.New("stream: a TLS client key needs its certificate file")
	}
	return tc, nil
}

// setSarama recomputes the function the runtime runs on each sarama
// configuration it builds: the application's [SaramaConfig] function, then
// the [WithSecurity] settings, so neither option undoes the other whatever
// their order.
func (c *config) setSarama() {
	fn, sec := c.saramaFn, c.security
	if fn == nil && sec == nil {
		c.sarama = nil
		return
	}
	c.sarama = func(sc *sarama.Config) {
		if fn != nil {
			fn(sc)
		}
		if sec != nil {
			sec.apply(sc)
		}
	}
}
