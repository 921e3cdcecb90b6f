package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/app"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

func noEnv(string) string { return "" }

func TestMainUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		out  string // in stdout
		err  string // the one line in stderr
	}{
		{name: "help", args: []string{"-h"}, code: 0, out: "Subcommands:"},
		{name: "help subcommand", args: []string{"help"}, code: 0, out: "EMOSTREAM_DATA_DIR"},
		{name: "bad flag", args: []string{"run", "--window", "-"}, code: 2, err: "emostream: invalid value"},
		{name: "bad env", args: []string{"api"}, env: map[string]string{"EMOSTREAM_SCALE": "x"}, code: 2, err: `emostream: EMOSTREAM_SCALE="x"`},
		{name: "two problems, one line", args: []string{"--scale", "0", "--grace", "-1s"}, code: 2, err: "--grace must not be negative, got -1s; --scale must be at least 1"},
		{name: "no aggregator", args: []string{"aggregate", "--brokers", "127.0.0.1:1"}, code: 1, err: "emostream aggregate: this build has no aggregator"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr kafkatest.LogBuffer
			code := app.Main(context.Background(), app.Options{Args: tc.args, Getenv: func(k string) string { return tc.env[k] },
				Stdout: &stdout, Stderr: &stderr})
			require.Equal(t, tc.code, code, "stderr: %s", stderr.String())
			require.Contains(t, stdout.String(), tc.out)
			if tc.err != "" {
				lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
				require.Len(t, lines, 1, "one-line reason: %q", stderr.String())
				require.Contains(t, lines[0], tc.err)
			}
		})
	}
}

func TestLoadSubcommand(t *testing.T) {
	var n int64
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		n++
		mu.Unlock()
		w.WriteHeader(202)
	}))
	defer srv.Close()
	var stdout, stderr kafkatest.LogBuffer
	code := app.Main(context.Background(), app.Options{
		Args:   []string{"load", "--target", srv.URL, "--clients", "2", "--rate", "100", "--duration", "500ms"},
		Getenv: noEnv, Stdout: &stdout, Stderr: &stderr})
	require.Equal(t, 0, code, stderr.String())
	require.Contains(t, stdout.String(), "load summary:")
	mu.Lock()
	require.Positive(t, n)
	mu.Unlock()
}

// startMain runs Main in the background and returns a stop function that
// cancels it and returns its exit code.
func startMain(t *testing.T, o app.Options) (stdout *kafkatest.LogBuffer, stop func() int) {
	t.Helper()
	stdout, stderr := &kafkatest.LogBuffer{}, &kafkatest.LogBuffer{}
	o.Stdout, o.Stderr = stdout, stderr
	if o.Getenv == nil {
		o.Getenv = noEnv
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- app.Main(ctx, o) }()
	stopped := false
	stop = func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(60 * time.Second):
			t.Fatalf("Main did not return after cancel; stderr:\n%s", stderr.String())
			return -1
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	})
	return stdout, stop
}

var urlLine = regexp.MustCompile(`dashboard:\s+(http://\S+)/`)

func waitURL(t *testing.T, stdout *kafkatest.LogBuffer) string {
	t.Helper()
	var base string
	require.Eventually(t, func() bool {
		m := urlLine.FindStringSubmatch(stdout.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	}, 30*time.Second, 20*time.Millisecond, "no dashboard URL printed: %q", stdout.String())
	return base
}

// fakeAggregator stands in for the real one: it checks its configuration
// and writes a result for the current window every 200ms.
func fakeAggregator(t *testing.T, called chan<- app.AggregatorConfig) app.AggregatorFunc {
	return func(ctx context.Context, c app.AggregatorConfig) error {
		called <- c
		p, err := sarama.NewSyncProducer(c.Brokers, kafkatest.SaramaConfig())
		if err != nil {
			return err
		}
		defer p.Close()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				start := time.Now().UnixMilli() / c.Window.Milliseconds() * c.Window.Milliseconds()
				v, _ := wire.NewResult(start, c.Window, "🔥", 42, c.Scale).Marshal()
				if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: c.OutputTopic, Key: sarama.StringEncoder("🔥"), Value: sarama.ByteEncoder(v)}); err != nil {
					return err
				}
			}
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestRun starts the whole application the way a user does, once with the
// embedded broker it starts itself and once against a real Kafka.
func TestRun(t *testing.T) {
	cases := []struct {
		name    string
		brokers func(t *testing.T) []string
	}{
		{"embedded", func(*testing.T) []string { return nil }},
		{"real", func(t *testing.T) []string { return kafkatest.RealBrokers(t) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			brokers := tc.brokers(t)
			in, out, dlq := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out"), kafkatest.UniqueName(t, "dlq")
			args := []string{"run", "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0", "--load-clients", "2", "--rate", "200",
				"--input-topic", in, "--output-topic", out, "--dlq-topic", dlq, "--partitions", "3", "--window", "1s", "--grace", "100ms"}
			if brokers != nil {
				args = append(args, "--brokers", strings.Join(brokers, ","))
			}
			called := make(chan app.AggregatorConfig, 1)
			stdout, stop := startMain(t, app.Options{Args: args, Aggregator: fakeAggregator(t, called)})
			base := waitURL(t, stdout)
			start := time.Now()

			var acfg app.AggregatorConfig
			select {
			case acfg = <-called:
			case <-time.After(30 * time.Second):
				t.Fatal("aggregator not started")
			}
			require.Equal(t, in, acfg.InputTopic)
			require.Equal(t, out, acfg.OutputTopic)
			require.Equal(t, dlq, acfg.DLQTopic)
			require.Equal(t, int32(3), acfg.Partitions)
			require.Equal(t, time.Second, acfg.Window)
			require.Equal(t, 100*time.Millisecond, acfg.Grace)
			require.Equal(t, int64(1000), acfg.Scale)
			require.Empty(t, acfg.StateDir, "no --data-dir: state in memory")
			require.NotNil(t, acfg.Registerer)
			require.NotEmpty(t, acfg.Brokers)

			require.Eventually(t, func() bool { code, _ := get(t, base+"/healthz"); return code == 200 }, 30*time.Second, 50*time.Millisecond)
			require.Less(t, time.Since(start), 15*time.Second, "usable within seconds")

			res, err := http.Post(base+"/api", "application/json", strings.NewReader(`{"user_id":"me","emoji_type":"🇮🇳"}`))
			require.NoError(t, err)
			res.Body.Close()
			require.Equal(t, 202, res.StatusCode)

			code, page := get(t, base+"/")
			require.Equal(t, 200, code)
			require.Contains(t, page, "EmoStream")
			require.Eventually(t, func() bool {
				_, body := get(t, base+"/api/windows?limit=5")
				var rs []wire.Result
				return json.Unmarshal([]byte(body), &rs) == nil && len(rs) > 0 && rs[0].Count == 42
			}, 30*time.Second, 100*time.Millisecond, "results reach the dashboard")
			require.Eventually(t, func() bool {
				_, m := get(t, base+"/metrics")
				return strings.Contains(m, "emostream_dashboard_results_total") && !strings.Contains(m, "emostream_api_emojis_accepted_total 0\n") &&
					strings.Contains(m, "emostream_api_emojis_accepted_total")
			}, 30*time.Second, 100*time.Millisecond, "load clients send emojis")

			// The topics exist with --partitions.
			kb := acfg.Brokers
			client, err := sarama.NewClient(kb, kafkatest.SaramaConfig())
			require.NoError(t, err)
			for _, topic := range []string{in, out, dlq} {
				parts, err := client.Partitions(topic)
				require.NoError(t, err, topic)
				require.Len(t, parts, 3, topic)
			}
			require.NoError(t, client.Close())
			// On the embedded broker the app's topics get --retention
			// (default 10m); a real cluster's topics keep its defaults.
			retention := kafkatest.TopicConfig(t, kb, in)["retention.ms"]
			if brokers == nil {
				require.Equal(t, "600000", retention)
			} else {
				require.NotEqual(t, "600000", retention)
			}

			require.Equal(t, 0, stop(), "graceful exit")
			if brokers == nil {
				// The embedded broker is gone with the process.
				_, err := sarama.NewClient(kb, kafkatest.SaramaConfig())
				require.Error(t, err)
			}
		})
	}
}

func TestBrokerSubcommand(t *testing.T) {
	stdout, stop := startMain(t, app.Options{Args: []string{"broker", "--broker-listen", "127.0.0.1:0", "--partitions", "2"}})
	re := regexp.MustCompile(`connect with --brokers (\S+)`)
	var addr string
	require.Eventually(t, func() bool {
		m := re.FindStringSubmatch(stdout.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, 30*time.Second, 20*time.Millisecond)
	kafkatest.ProduceStrings(t, []string{addr}, "topic1", []kafkatest.KV{{Key: "🔥", Value: "x"}})
	msgs := kafkatest.ConsumeN(t, []string{addr}, "topic1", 1, 10*time.Second)
	require.Equal(t, "🔥", msgs[0].Key)
	client, err := sarama.NewClient([]string{addr}, kafkatest.SaramaConfig())
	require.NoError(t, err)
	parts, err := client.Partitions("topic2")
	require.NoError(t, err)
	require.Len(t, parts, 2, "the broker creates the app's topics")
	require.NoError(t, client.Close())
	require.Equal(t, 0, stop())
}

func TestAPISubcommandWaitsForKafka(t *testing.T) {
	// api with a broker that is not there yet keeps trying instead of
	// failing, and stops cleanly on cancel.
	_, stop := startMain(t, app.Options{Args: []string{"api", "--brokers", "127.0.0.1:1", "--http", "127.0.0.1:0"}})
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, 0, stop())
}
