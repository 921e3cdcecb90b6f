package app

import (
	"testing"
	"time"

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
		{name: "defaults", check: func(t *testing.T, c *config) {
			require.Equal(t, "run", c.command)
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
			require.Equal(t, []string{"127.0.0.1:9092"}, c.kafkaBrokers())
		}},
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
			"EMOSTREAM_CLIENTS": "7", "EMOSTREAM_RATE": "2.5", "EMOSTREAM_DURATION": "1m", "EMOSTREAM_BATCH": "20"},
			check: func(t *testing.T, c *config) {
				require.Equal(t, &config{command: "run", brokers: []string{"kafka:9092"}, brokerListen: "0.0.0.0:9092",
					dataDir: "/var/lib/emo", http: "0.0.0.0:80", httpSet: true, inputTopic: "in", outputTopic: "out", dlqTopic: "dead",
					partitions: 8, window: time.Second, grace: 0, scale: 10, loadClients: 5, target: "http://api:8080",
					clients: 7, rate: 2.5, duration: time.Minute, batch: 20}, c)
			}},
		{name: "flag beats environment", args: []string{"api", "--partitions", "2"}, env: map[string]string{"EMOSTREAM_PARTITIONS": "9"},
			check: func(t *testing.T, c *config) { require.Equal(t, int32(2), c.partitions) }},

		{name: "unknown flag", args: []string{"--nope"}, wantErr: "flag provided but not defined: -nope"},
		{name: "unknown subcommand", args: []string{"serve"}, wantErr: `unknown subcommand "serve"`},
		{name: "stray argument", args: []string{"run", "extra"}, wantErr: `unexpected argument "extra"`},
		{name: "bad duration", args: []string{"--window", "soon"}, wantErr: "window"},
		{name: "zero window", args: []string{"--window", "0s"}, wantErr: "--window must be at least 1ms"},
		{name: "sub-ms window", args: []string{"--window", "1500us"}, wantErr: "whole number of milliseconds"},
		{name: "negative grace", args: []string{"--grace", "-1s"}, wantErr: "--grace must not be negative"},
		{name: "zero partitions", args: []string{"--partitions", "0"}, wantErr: "positive integer"},
		{name: "huge partitions", args: []string{"--partitions", "99999999999"}, wantErr: "positive integer"},
		{name: "zero scale", args: []string{"--scale", "0"}, wantErr: "--scale must be at least 1"},
		{name: "negative load clients", args: []string{"--load-clients", "-1"}, wantErr: "--load-clients"},
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
