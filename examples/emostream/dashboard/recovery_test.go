package dashboard_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/dashboard"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// health returns /healthz's status and body.
func health(t *testing.T, base string) (int, map[string]string) {
	t.Helper()
	res, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var body map[string]string
	require.NoError(t, json.Unmarshal(b, &body), "%s", b)
	return res.StatusCode, body
}

// metric returns the line of the named sample on /metrics.
func metric(t *testing.T, base, name string) string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	return ""
}

// TestBrokerRestart restarts the embedded broker in-process without its
// data, as `emostream run` without --data-dir does: /healthz turns 503 with
// the reason while it is gone, the consumer finds its offsets out of range
// on the new, empty log, resets, and the viewers connected all along get the
// results written after the restart; /healthz is 200 again.
func TestBrokerRestart(t *testing.T) {
	b := kafkatest.StartRestartable(t)
	brokers := b.Addrs()
	topic := kafkatest.UniqueName(t, "topic2")
	kafkatest.CreateTopic(t, brokers, topic, 2)
	_, base := startDashboard(t, dashboard.Config{Brokers: brokers, Topic: topic})
	events := openEvents(t, base)

	// 20 results, about 10 per partition, so the offsets the dashboard has
	// read are beyond the end of the logs after the restart.
	now := time.Now().UnixMilli() / 2000 * 2000
	var before []wire.Result
	for i := range 20 {
		before = append(before, result(now-int64(i)*2000, "🔥", int64(i+1)), result(now-int64(i)*2000, "🎉", int64(i+1)))
	}
	kafkatest.ProduceStrings(t, brokers, topic, toKV(before...))
	for range before {
		name, _ := events.next(t)
		require.Equal(t, "window", name)
	}
	code, _ := health(t, base)
	require.Equal(t, 200, code)

	b.Stop()
	require.Eventually(t, func() bool {
		code, body := health(t, base)
		return code == 503 && strings.Contains(body["error"], "kafka")
	}, 20*time.Second, 50*time.Millisecond, "/healthz reports the broker gone")
	_, body := health(t, base)
	t.Logf("healthz while the broker is down: %v", body)

	b.Start()
	kafkatest.CreateTopic(t, brokers, topic, 2)
	after := []wire.Result{result(now+2000, "🔥", 7), result(now+2000, "🎉", 8)}
	kafkatest.ProduceStrings(t, brokers, topic, toKV(after...))

	got := map[string]int64{}
	for len(got) < len(after) {
		_, data := events.next(t)
		r, err := wire.DecodeResult([]byte(data))
		require.NoError(t, err)
		if r.WindowStart == now+2000 {
			got[r.EmojiType] = r.Count
		}
	}
	require.Equal(t, map[string]int64{"🔥": 7, "🎉": 8}, got, "results written after the restart reach the viewers")
	require.Eventually(t, func() bool { code, _ := health(t, base); return code == 200 }, 20*time.Second, 50*time.Millisecond,
		"/healthz recovers")
	require.NotEqual(t, "emostream_dashboard_offset_resets_total 0", metric(t, base, "emostream_dashboard_offset_resets_total"),
		"the out-of-range offsets were reset")
	require.NotEmpty(t, metric(t, base, "emostream_dashboard_offset_resets_total"))
}
