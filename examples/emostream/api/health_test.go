package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/api"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestHealthFollowsBrokerRestart: /healthz is 200, turns 503 with a JSON
// reason when the embedded broker stops, and 200 again (and emojis are
// accepted again) once it is back on the same address, empty, with the
// topic created again.
func TestHealthFollowsBrokerRestart(t *testing.T) {
	b := kafkatest.StartRestartable(t)
	topic := kafkatest.UniqueName(t, "in")
	kafkatest.CreateTopic(t, b.Addrs(), topic, 2)
	s, base := startAPI(t, api.Config{Brokers: b.Addrs(), Topic: topic, AckTimeout: time.Second})
	waitReady(t, s)

	healthz := func() (int, map[string]string) {
		res, err := http.Get(base + "/healthz")
		require.NoError(t, err)
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		var body map[string]string
		require.NoError(t, json.Unmarshal(raw, &body), "%s", raw)
		return res.StatusCode, body
	}
	code, _ := healthz()
	require.Equal(t, 200, code)

	b.Stop()
	require.Eventually(t, func() bool { code, body := healthz(); return code == 503 && body["error"] != "" },
		15*time.Second, 50*time.Millisecond)
	_, body := healthz()
	t.Logf("healthz while the broker is down: %v", body)

	b.Start()
	kafkatest.CreateTopic(t, b.Addrs(), topic, 2)
	require.Eventually(t, func() bool { code, _ := healthz(); return code == 200 }, 30*time.Second, 50*time.Millisecond,
		"/healthz recovers")
	require.Eventually(t, func() bool { return post(t, base+"/api", "application/json", okEmoji).status == 202 },
		30*time.Second, 100*time.Millisecond, "emojis are accepted again")
}
