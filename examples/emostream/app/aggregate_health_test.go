package app_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/app"
	"github.com/emostream/emostream/pkg/stream/embedded"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestAggregateHealthz: `emostream aggregate --http` answers /healthz 200
// while Kafka serves its topics, 503 with the reason while the broker is
// gone, and 200 again once it is back (restarted in-process, empty, the
// topics created again).
func TestAggregateHealthz(t *testing.T) {
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().String()
	}
	brokerAddr, httpAddr := free(), free()
	b, err := embedded.Start(embedded.Addr(brokerAddr))
	require.NoError(t, err)
	defer func() { _ = b.Close() }()
	in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
	dlq := in + ".dlq"

	aggregator := func(ctx context.Context, _ app.AggregatorConfig) error { <-ctx.Done(); return nil }
	startMain(t, app.Options{Aggregator: aggregator, Args: []string{"aggregate", "--brokers", brokerAddr, "--http", httpAddr,
		"--input-topic", in, "--output-topic", out, "--dlq-topic", dlq, "--partitions", "2"}})
	base := "http://" + httpAddr
	healthz := func() (int, string) {
		code, body := 0, ""
		if conn, err := net.DialTimeout("tcp", httpAddr, time.Second); err == nil {
			conn.Close()
			code, body = get(t, base+"/healthz")
		}
		return code, body
	}
	require.Eventually(t, func() bool { code, _ := healthz(); return code == 200 }, 30*time.Second, 50*time.Millisecond)

	require.NoError(t, b.Close())
	require.Eventually(t, func() bool {
		code, body := healthz()
		return code == 503 && strings.Contains(body, "kafka")
	}, 15*time.Second, 50*time.Millisecond, "/healthz reports the broker gone")
	_, body := healthz()
	t.Logf("healthz while the broker is down: %s", body)

	b, err = embedded.Start(embedded.Addr(brokerAddr))
	require.NoError(t, err)
	kafkatest.CreateTopic(t, b.Addrs(), in, 2)
	kafkatest.CreateTopic(t, b.Addrs(), out, 2)
	require.Eventually(t, func() bool { code, _ := healthz(); return code == 200 }, 30*time.Second, 50*time.Millisecond,
		"/healthz recovers")
}
