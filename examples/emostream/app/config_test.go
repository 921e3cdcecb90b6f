package app

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c *config)
		wantErr string
	}{
		{name: "log level from the environment", env: map[string]string{"EMOSTREAM_LOG_LEVEL": "debug"}, check: func(t *testing.T, c *config) {
			require.Equal(t, slog.LevelDebug, c.logLevel)
		}},
		{name: "log level flag", args: []string{"--log-level", "WARN"}, check: func(t *testing.T, c *config) {
			require.Equal(t, slog.LevelWarn, c.logLevel)
		}},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: `invalid value "loud" for flag --log-level`},
		{name: "defaults", check: func(t *testing.T, c *config) {
			require.Equal(t, "run", c.command)
			require.Equal(t, slog.LevelInfo, c.logLevel)
			require.Empty(t, c.brokers)
			require.Equal(t, "127.0.0.1:9092", c.brokerListen)
			require.Equal(t, "", c.dataDir)
			require.Equal(t, "127.0.0.1:8080", c.http)
			require.False(t, c.httpSet)
			require.Equal(t, "topic1", c.inputTopic)
			require.Equal(t, "topic2", c.outputTopic)
			require.Equal(t, "topic1.dlq", c.dlqTopic)
			require.Equal(t, int32(4), c.partitions)
			require.Equal(t, 2*time.Second, c.window)
			require.Equal(t, 500*time.Millisecond, c.grace)
			require.Equal(t, int64(1000), c.scale)
			require.Equal(t, 0, c.loadClients)
			require.Equal(t, 10*time.Minute, c.retention)
			require.False(t, c.exactlyOnce)
			require.Equal(t, []string{"127.0.0.1:9092"}, c.kafkaBrokers())
			require.Equal(t, "", c.instanceID)
			require.Equal(t, 6*time.Second, c.sessionTimeout)
			require.Equal(t, 500*time.Millisecond, c.heartbeatInterval)
			require.Equal(t, 1, c.standbyReplicas)
			require.Equal(t, "cooperative", c.rebalancing)
		}},
		{name: "membership", args: []string{"aggregate", "--instance-id", "agg-1", "--session-timeout", "8s", "--standby-replicas", "2"}, env: map[string]string{"EMOSTREAM_HEARTBEAT_INTERVAL": "1s", "EMOSTREAM_REBALANCING": "eager"},
			check: func(t *testing.T, c *config) {
				require.Equal(t, "eager", c.rebalancing)
				require.Equal(t, "agg-1", c.instanceID)
				require.Equal(t, 8*time.Second, c.sessionTimeout)
				require.Equal(t, time.Second, c.heartbeatInterval)
				require.Equal(t, 2, c.standbyReplicas)
			}},
		{name: "negative standby replicas", args: []string{"aggregate", "--standby-replicas", "-1"}, wantErr: "--standby-replicas must not be negative"},
		{name: "unknown rebalancing", args: []string{"aggregate", "--rebalancing", "sticky"}, wantErr: `--rebalancing must be eager or cooperative, got "sticky"`},
		{name: "bad instance id", args: []string{"aggregate", "--instance-id", "a/b"}, wantErr: "--instance-id"},
		{name: "heartbeat not below session timeout", args: []string{"--session-timeout", "6s", "--heartbeat-interval", "6s"}, wantErr: "must be below --session-timeout"},
		{name: "zero session timeout", args: []string{"--session-timeout", "0"}, wantErr: "--session-timeout must be"},
		{name: "subcommand and flags", args: []string{"aggregate", "--brokers", "k1:9092, k2:9093", "--window=5s", "-grace", "1s", "--partitions", "12", "--http", ":9100"},
			check: func(t *testing.T, c *config) {
				require.Equal(t, "aggregate", c.command)
				require.Equal(t, []string{"k1:9092", "k2:9093"}, c.brokers)
				require.Equal(t, []string{"k1:9092", "k2:9093"}, c.kafkaBrokers())
				require.Equal(t, 5*time.Second, c.window)
				require.Equal(t, time.Second, c.grace)
				require.Equal(t, int32(12), c.partitions)
				require.True(t, c.httpSet)
			}},
		{name: "flags without subcommand mean run", args: []string{"--load-clients", "3"},
			check: func(t *testing.T, c *config) {
				require.Equal(t, "run", c.command)
				require.Equal(t, 3, c.loadClients)
			}},
		{name: "environment", env: map[string]string{
			"EMOSTREAM_BROKERS": "kafka:9092", "EMOSTREAM_DATA_DIR": "/var/lib/emo", "EMOSTREAM_BROKER_LISTEN": "0.0.0.0:9092",
			"EMOSTREAM_INPUT_TOPIC": "in", "EMOSTREAM_OUTPUT_TOPIC": "out", "EMOSTREAM_DLQ_TOPIC": "dead",
			"EMOSTREAM_PARTITIONS": "8", "EMOSTREAM_WINDOW": "1s", "EMOSTREAM_GRACE": "0s", "EMOSTREAM_SCALE": "10",
			"EMOSTREAM_LOAD_CLIENTS": "5", "EMOSTREAM_HTTP": "0.0.0.0:80", "EMOSTREAM_TARGET": "http://api:8080",
			"EMOSTREAM_CLIENTS": "7", "EMOSTREAM_RATE": "2.5", "EMOSTREAM_DURATION": "1m", "EMOSTREAM_BATCH": "20",
			"EMOSTREAM_RETENTION": "1h", "EMOSTREAM_EXACTLY_ONCE": "true",
			"EMOSTREAM_INSTANCE_ID": "agg-7", "EMOSTREAM_SESSION_TIMEOUT": "10s", "EMOSTREAM_HEARTBEAT_INTERVAL": "2s",
			"EMOSTREAM_STANDBY_REPLICAS": "0", "EMOSTREAM_MAX_VIEWERS": "2500"},
			check: func(t *testing.T, c *config) {
				require.Equal(t, &config{command: "run", brokers: []string{"kafka:9092"}, brokerListen: "0.0.0.0:9092",
					dataDir: "/var/lib/emo", http: "0.0.0.0:80", httpSet: true, inputTopic: "in", outputTopic: "out", dlqTopic: "dead",
					instanceID: "agg-7", sessionTimeout: 10 * time.Second, heartbeatInterval: 2 * time.Second, rebalancing: "cooperative", usersTopic: "users",
					partitions: 8, window: time.Second, grace: 0, scale: 10, loadClients: 5, maxViewers: 2500, target: "http://api:8080",
					clients: 7, rate: 2.5, duration: time.Minute, batch: 20, retention: time.Hour, exactlyOnce: true,
					aggregations: "count"}, c)
			}},
		{name: "flag beats environment", args: []string{"api", "--partitions", "2"}, env: map[string]string{"EMOSTREAM_PARTITIONS": "9"},
			check: func(t *testing.T, c *config) { require.Equal(t, int32(2), c.partitions) }},

		{name: "unknown flag", args: []string{"--nope"}, wantErr: "flag provided but not defined: --nope"},
		{name: "unknown subcommand", args: []string{"serve"}, wantErr: `unknown subcommand "serve"`},
		{name: "stray argument", args: []string{"run", "extra"}, wantErr: `unexpected argument "extra"`},
		{name: "bad duration", args: []string{"--window", "soon"}, wantErr: "window"},
		{name: "retention too short", args: []string{"--retention", "30s"}, wantErr: "--retention must be 0 (forever) or at least 1m"},
		{name: "zero window", args: []string{"--window", "0s"}, wantErr: "--window must be at least 1ms"},
		{name: "sub-ms window", args: []string{"--window", "1500us"}, wantErr: "whole number of milliseconds"},
		{name: "negative grace", args: []string{"--grace", "-1s"}, wantErr: "--grace must not be negative"},
		{name: "zero partitions", args: []string{"--partitions", "0"}, wantErr: "positive integer"},
		{name: "huge partitions", args: []string{"--partitions", "99999999999"}, wantErr: "positive integer"},
		{name: "zero scale", args: []string{"--scale", "0"}, wantErr: "--scale must be at least 1"},
		{name: "negative load clients", args: []string{"--load-clients", "-1"}, wantErr: "--load-clients"},
		{name: "zero max viewers", args: []string{"--max-viewers", "0"}, wantErr: "--max-viewers must be at least 1"},
		{name: "bad http", args: []string{"--http", "8080"}, wantErr: `--http "8080" is not host:port`},
		{name: "bad broker", args: []string{"--brokers", "kafka"}, wantErr: `broker "kafka" is not host:port`},
		{name: "bad topic", args: []string{"--input-topic", "a/b"}, wantErr: "not a valid Kafka topic name"},
		{name: "same topics", args: []string{"--output-topic", "topic1"}, wantErr: `--input-topic and --output-topic are both "topic1"`},
		{name: "bad batch", args: []string{"load", "--batch", "1001"}, wantErr: "--batch must be 1 to 1000"},
		{name: "bad rate", args: []string{"load", "--rate", "-5"}, wantErr: "--rate"},
		{name: "bad env", env: map[string]string{"EMOSTREAM_PARTITIONS": "many"}, wantErr: `EMOSTREAM_PARTITIONS="many"`},
		{name: "help", args: []string{"-h"}, wantErr: "help requested"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(tc.args, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

func TestParseSecurity(t *testing.T) {
	pki := NewTestPKI(t)
	const pw = "pa55-w0rd-secret"
	brokers := []string{"--brokers", "kafka:9093"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c *config)
		wantErr string
	}{
		{name: "none by default", args: brokers, check: func(t *testing.T, c *config) {
			require.False(t, c.security.Enabled())
			require.Equal(t, "plaintext", c.security.String())
		}},
		{name: "flags", args: append([]string{"api", "--kafka-tls", "--kafka-tls-ca", pki.CAFile, "--kafka-tls-cert", pki.CertFile,
			"--kafka-tls-key", pki.KeyFile, "--kafka-sasl-mechanism", "scram-sha-512", "--kafka-sasl-user", "alice",
			"--kafka-sasl-password", pw}, brokers...),
			check: func(t *testing.T, c *config) {
				require.NotNil(t, c.security.TLS)
				require.NotNil(t, c.security.TLS.RootCAs)
				require.Len(t, c.security.TLS.Certificates, 1)
				require.False(t, c.security.TLS.InsecureSkipVerify)
				require.Equal(t, "SCRAM-SHA-512", c.security.SASL.Mechanism)
				require.Equal(t, "alice", c.security.SASL.User)
				require.Equal(t, pw, c.security.SASL.Password)
				sc := sarama.NewConfig()
				c.configureSarama(sc)
				require.True(t, sc.Net.TLS.Enable)
				require.True(t, sc.Net.SASL.Enable)
				require.NotNil(t, sc.Net.SASL.SCRAMClientGeneratorFunc)
			}},
		{name: "environment", args: []string{"dashboard"}, env: map[string]string{
			"EMOSTREAM_BROKERS": "kafka:9093", "EMOSTREAM_KAFKA_TLS": "true", "EMOSTREAM_KAFKA_TLS_INSECURE_SKIP_VERIFY": "1",
			"EMOSTREAM_KAFKA_SASL_MECHANISM": "PLAIN", "EMOSTREAM_KAFKA_SASL_USER": "bob", "EMOSTREAM_KAFKA_SASL_PASSWORD": pw},
			check: func(t *testing.T, c *config) {
				require.True(t, c.security.TLS.InsecureSkipVerify)
				require.Nil(t, c.security.TLS.RootCAs, "system roots")
				require.Equal(t, "PLAIN", c.security.SASL.Mechanism)
				require.Equal(t, "bob", c.security.SASL.User)
				require.Equal(t, pw, c.security.SASL.Password)
			}},
		{name: "flag beats environment", args: []string{"api", "--kafka-sasl-password", "other"}, env: map[string]string{
			"EMOSTREAM_KAFKA_SASL_MECHANISM": "PLAIN", "EMOSTREAM_KAFKA_SASL_USER": "bob", "EMOSTREAM_KAFKA_SASL_PASSWORD": pw},
			check: func(t *testing.T, c *config) { require.Equal(t, "other", c.security.SASL.Password) }},
		{name: "load ignores nothing but needs nothing", args: []string{"load", "--kafka-tls"},
			check: func(t *testing.T, c *config) { require.NotNil(t, c.security.TLS) }},

		{name: "ca without tls", args: append([]string{"--kafka-tls-ca", pki.CAFile}, brokers...), wantErr: "--kafka-tls-ca needs --kafka-tls"},
		{name: "insecure without tls", args: append([]string{"--kafka-tls-insecure-skip-verify"}, brokers...), wantErr: "--kafka-tls-insecure-skip-verify needs --kafka-tls"},
		{name: "cert without key", args: append([]string{"--kafka-tls", "--kafka-tls-cert", pki.CertFile}, brokers...), wantErr: "--kafka-tls-cert needs --kafka-tls-key"},
		{name: "key without cert", args: append([]string{"--kafka-tls", "--kafka-tls-key", pki.KeyFile}, brokers...), wantErr: "--kafka-tls-key needs --kafka-tls-cert"},
		{name: "missing ca file", args: append([]string{"--kafka-tls", "--kafka-tls-ca", "/nonexistent/ca.pem"}, brokers...), wantErr: "reading TLS CA file"},
		{name: "ca file not PEM", args: append([]string{"--kafka-tls", "--kafka-tls-ca", pki.KeyFile}, brokers...), wantErr: "holds no PEM certificate"},
		{name: "key does not match", args: append([]string{"--kafka-tls", "--kafka-tls-cert", pki.CAFile, "--kafka-tls-key", pki.KeyFile}, brokers...), wantErr: "loading TLS client certificate"},
		{name: "user without mechanism", args: append([]string{"--kafka-sasl-user", "alice"}, brokers...), wantErr: "--kafka-sasl-user needs --kafka-sasl-mechanism"},
		{name: "password without mechanism", args: brokers, env: map[string]string{"EMOSTREAM_KAFKA_SASL_PASSWORD": pw}, wantErr: "--kafka-sasl-password needs --kafka-sasl-mechanism"},
		{name: "mechanism without user", args: append([]string{"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-password", pw}, brokers...), wantErr: "--kafka-sasl-mechanism PLAIN needs --kafka-sasl-user"},
		{name: "mechanism without password", args: append([]string{"--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-user", "a"}, brokers...), wantErr: "needs a password (EMOSTREAM_KAFKA_SASL_PASSWORD or --kafka-sasl-password)"},
		{name: "unknown mechanism", args: append([]string{"--kafka-sasl-mechanism", "GSSAPI", "--kafka-sasl-user", "a", "--kafka-sasl-password", pw}, brokers...), wantErr: `must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got "GSSAPI"`},
		{name: "embedded broker in run", args: []string{"run", "--kafka-tls"}, wantErr: "the embedded broker (run without --brokers) has neither"},
		{name: "broker subcommand", args: []string{"broker", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "a", "--kafka-sasl-password", pw}, wantErr: "embedded broker (broker without --brokers)"},
		{name: "bad bool in environment", args: brokers, env: map[string]string{"EMOSTREAM_KAFKA_TLS": "maybe"}, wantErr: `EMOSTREAM_KAFKA_TLS="maybe"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(tc.args, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.NotContains(t, err.Error(), pw, "no password in errors")
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

// TestUsageListsSecurityFlags checks that -h documents every security flag.
func TestUsageListsSecurityFlags(t *testing.T) {
	var b strings.Builder
	usage(&b, "")
	for _, f := range []string{"--kafka-tls", "--kafka-tls-ca", "--kafka-tls-cert", "--kafka-tls-key", "--kafka-tls-insecure-skip-verify",
		"--kafka-sasl-mechanism", "--kafka-sasl-user", "--kafka-sasl-password"} {
		require.Regexp(t, "\n  "+f+"[ \n]", b.String(), f)
	}
	require.Contains(t, b.String(), "prefer EMOSTREAM_KAFKA_SASL_PASSWORD")
}
