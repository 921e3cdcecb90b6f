package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/emostream/emostream/examples/emostream/aggregator"
	"github.com/emostream/emostream/examples/emostream/app"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

const password = "Xy9-pa55word-must-not-leak"

// secureBroker starts a kfake broker that demands SASL user alice with
// password (when mech is set) and TLS (when pki is set).
func secureBroker(t *testing.T, mech string, pki *app.TestPKI) (string, *kfake.Cluster) {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(1)}
	if mech != "" {
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser(mech, "alice", password))
	}
	if pki != nil {
		opts = append(opts, kfake.TLS(pki.ServerTLS(false)))
	}
	c, err := kfake.NewCluster(opts...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0], c
}

// realAggregator is what main.go passes to app.Main.
func realAggregator(ctx context.Context, c app.AggregatorConfig) error {
	return aggregator.Run(ctx, aggregator.Config{
		Brokers: c.Brokers, InputTopic: c.InputTopic, OutputTopic: c.OutputTopic, DLQTopic: c.DLQTopic,
		Partitions: c.Partitions, Window: c.Window, Grace: c.Grace, Scale: c.Scale, StateDir: c.StateDir,
		Logger: c.Logger, Registerer: c.Registerer, Extra: []stream.Opt{stream.WithSecurity(c.Security)},
	})
}

// TestRunSecured runs the whole app against a broker that demands TLS and
// SCRAM: the topic admin, the API's producer, the aggregator (consumer
// group, producer, internal topics) and the dashboard's consumer all have
// to get through for an emoji to show up as a window result.
func TestRunSecured(t *testing.T) {
	pki := app.NewTestPKI(t)
	addr, _ := secureBroker(t, stream.SASLScramSHA256, pki)
	in, out, dlq := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out"), kafkatest.UniqueName(t, "dlq")
	args := []string{"run", "--brokers", addr, "--http", "127.0.0.1:0", "--input-topic", in, "--output-topic", out, "--dlq-topic", dlq,
		"--partitions", "2", "--window", "500ms", "--grace", "100ms",
		"--kafka-tls", "--kafka-tls-ca", pki.CAFile, "--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-user", "alice"}
	env := map[string]string{"EMOSTREAM_KAFKA_SASL_PASSWORD": password}
	stdout, stderr := &kafkatest.LogBuffer{}, &kafkatest.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- app.Main(ctx, app.Options{Args: args, Getenv: func(k string) string { return env[k] }, Stdout: stdout, Stderr: stderr,
			Aggregator: realAggregator})
	}()
	defer func() {
		cancel()
		select {
		case code := <-done:
			require.Equal(t, 0, code, "stderr:\n%s", stderr.String())
		case <-time.After(60 * time.Second):
			t.Fatal("Main did not return")
		}
		require.NotContains(t, stdout.String()+stderr.String(), password)
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	}()
	base := waitURL(t, stdout)
	require.Eventually(t, func() bool { code, _ := get(t, base+"/healthz"); return code == 200 }, 30*time.Second, 50*time.Millisecond)

	body := `[{"user_id":"a","emoji_type":"🔐"},{"user_id":"b","emoji_type":"🔐"},{"user_id":"c","emoji_type":"🔐"}]`
	res, err := http.Post(base+"/api", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 202, res.StatusCode)
	require.Eventually(t, func() bool {
		_, page := get(t, base+"/api/windows?limit=10")
		var rs []wire.Result
		if json.Unmarshal([]byte(page), &rs) != nil {
			return false
		}
		var n int64
		for _, r := range rs {
			if r.EmojiType == "🔐" {
				n += r.Count
			}
		}
		return n == 3
	}, 30*time.Second, 100*time.Millisecond, "the window result reaches the dashboard")
	require.Contains(t, stderr.String(), `security="TLS, SASL SCRAM-SHA-256 user \"alice\""`)
}

// runMain runs Main until it returns or until d has passed (then it is
// cancelled as by Ctrl-C).
func runMain(t *testing.T, d time.Duration, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut kafkatest.LogBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := time.AfterFunc(d, cancel) // as Ctrl-C does
	defer stop.Stop()
	done := make(chan int, 1)
	go func() {
		done <- app.Main(ctx, app.Options{Args: args, Getenv: func(k string) string { return env[k] }, Stdout: &out, Stderr: &errOut})
	}()
	select {
	case code = <-done:
	case <-time.After(d + 30*time.Second):
		t.Fatalf("Main did not return; stderr:\n%s", errOut.String())
	}
	return code, out.String(), errOut.String()
}

// lastLine is the line Main ends a failure with.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestSecurityFailuresAndSecrets runs subcommands with a password against
// brokers that reject it, cannot be reached or speak another protocol:
// each must fail (or keep waiting) with a clear message, and the password
// must appear in none of the output.
func TestSecurityFailuresAndSecrets(t *testing.T) {
	pki := app.NewTestPKI(t)
	wrong := "wrong-" + password
	sasl := func(mech string) []string {
		return []string{"--kafka-sasl-mechanism", mech, "--kafka-sasl-user", "alice"}
	}
	withPassword := map[string]string{"EMOSTREAM_KAFKA_SASL_PASSWORD": password}

	t.Run("login rejected as Apache Kafka does", func(t *testing.T) {
		addr, cluster := secureBroker(t, stream.SASLPlain, nil)
		cluster.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
			cluster.KeepControl()
			auth := req.(*kmsg.SASLAuthenticateRequest)
			if parts := strings.SplitN(string(auth.SASLAuthBytes), "\x00", 3); len(parts) == 3 && parts[2] == password {
				return nil, nil, false
			}
			resp := auth.ResponseKind().(*kmsg.SASLAuthenticateResponse)
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := "Authentication failed: Invalid username or password"
			resp.ErrorMessage = &msg
			return resp, nil, true
		})
		start := time.Now()
		code, stdout, stderr := runMain(t, 30*time.Second, nil,
			append([]string{"api", "--brokers", addr, "--http", "127.0.0.1:0", "--kafka-sasl-password", wrong}, sasl("PLAIN")...)...)
		require.Equal(t, 1, code, stderr)
		require.Less(t, time.Since(start), 10*time.Second, "a rejected login is not retried")
		require.Contains(t, lastLine(stderr), `emostream api: connecting to Kafka at [`+addr+`]: Kafka rejected the login (SASL PLAIN user "alice")`)
		require.NotContains(t, stdout+stderr, wrong)
	})
	for _, mech := range []string{stream.SASLScramSHA256, stream.SASLScramSHA512} {
		t.Run("broker drops the connection "+mech, func(t *testing.T) {
			addr, _ := secureBroker(t, mech, nil)
			// SCRAM-SHA-512's key derivation under -race on a busy 2-core
			// machine can take over a second: give the first attempt time
			// to fail before the stop.
			code, stdout, stderr := runMain(t, 5*time.Second, map[string]string{"EMOSTREAM_KAFKA_SASL_PASSWORD": wrong},
				append([]string{"dashboard", "--brokers", addr, "--http", "127.0.0.1:0"}, sasl(mech)...)...)
			require.Equal(t, 0, code, "cancelled while waiting: a clean stop")
			require.Contains(t, stderr, "waiting for Kafka")
			require.NotContains(t, stdout+stderr, wrong)
		})
	}
	t.Run("unreachable broker", func(t *testing.T) {
		code, stdout, stderr := runMain(t, time.Second, nil,
			append([]string{"api", "--brokers", "127.0.0.1:1", "--http", "127.0.0.1:0", "--kafka-tls", "--kafka-sasl-password", password}, sasl("SCRAM-SHA-512")...)...)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stderr, "waiting for Kafka")
		require.NotContains(t, stdout+stderr, password)
	})
	t.Run("TLS to a plaintext broker", func(t *testing.T) {
		// kfake, unlike Kafka, waits for the rest of the "request" a TLS
		// ClientHello looks like: the handshake hangs. Ctrl-C must still
		// stop the app at once.
		addr, _ := secureBroker(t, "", nil)
		start := time.Now()
		code, stdout, stderr := runMain(t, 1500*time.Millisecond, withPassword,
			append([]string{"api", "--brokers", addr, "--http", "127.0.0.1:0", "--kafka-tls"}, sasl("PLAIN")...)...)
		require.Equal(t, 0, code, stderr)
		require.Less(t, time.Since(start), 5*time.Second, "Ctrl-C is not held up by the handshake")
		require.NotContains(t, stdout+stderr, password)
	})
	t.Run("untrusted broker certificate", func(t *testing.T) {
		addr, _ := secureBroker(t, stream.SASLPlain, pki)
		code, stdout, stderr := runMain(t, 30*time.Second, withPassword,
			append([]string{"dashboard", "--brokers", addr, "--http", "127.0.0.1:0", "--kafka-tls"}, sasl("PLAIN")...)...)
		require.Equal(t, 1, code, stderr)
		require.Contains(t, lastLine(stderr), "the broker's TLS certificate is not trusted (see --kafka-tls-ca)")
		require.NotContains(t, stdout+stderr, password)
	})
	t.Run("PLAIN without TLS warns", func(t *testing.T) {
		addr, _ := secureBroker(t, stream.SASLPlain, nil)
		_, stdout, stderr := runMain(t, 2*time.Second, withPassword,
			append([]string{"api", "--brokers", addr, "--http", "127.0.0.1:0"}, sasl("PLAIN")...)...)
		require.Contains(t, stderr, "SASL PLAIN without --kafka-tls sends the password in clear text")
		require.Contains(t, stderr, "connected to Kafka")
		require.NotContains(t, stdout+stderr, password)
	})
	t.Run("usage and bad flags", func(t *testing.T) {
		code, stdout, stderr := runMain(t, 10*time.Second, withPassword, "-h")
		require.Equal(t, 0, code)
		require.Contains(t, stdout, "kafka-sasl-password")
		require.NotContains(t, stdout+stderr, password)
		for _, args := range [][]string{
			{"api", "--kafka-sasl-password", password},
			{"api", "--kafka-sasl-password", password, "--kafka-sasl-mechanism", "KERBEROS", "--kafka-sasl-user", "a"},
			{"run", "--kafka-sasl-password", password, "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "a"},
			{"api", "--kafka-sasl-password", password, "--kafka-tls-key", "/nope"},
			{"api", "--kafka-sasl-password", password, "stray"},
		} {
			code, stdout, stderr := runMain(t, 10*time.Second, nil, args...)
			require.Equal(t, 2, code, "%v: %s", args, stderr)
			require.Len(t, strings.Split(strings.TrimSpace(stderr), "\n"), 1, "one line: %q", stderr)
			require.NotContains(t, stdout+stderr, password, fmt.Sprint(args))
		}
	})
}
