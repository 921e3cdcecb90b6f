package main_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestEndToEndPerRegion runs the binary with --aggregations
// count,per-region: users' regions written to the users topic (before the
// start on the real Kafka, so the aggregator's bootstrap reads them; after
// it on the embedded broker, which the process starts itself, so the table
// follows them), then emojis POSTed into one window; the per-region rows
// count them by region, a user without a row under "unknown".
func TestEndToEndPerRegion(t *testing.T) {
	bin := buildEmostream(t)
	for _, backend := range []string{"embedded", "real"} {
		t.Run(backend, func(t *testing.T) {
			_, out, _, brokers, args := runArgs(t, backend)
			users := "users"
			if backend == "real" {
				users = kafkatest.UniqueName(t, "users")
				kafkatest.CreateTopicWithConfig(t, brokers, users, 3, map[string]string{"cleanup.policy": "compact"})
			}
			rows := []kafkatest.KV{{Key: "a", Value: "eu"}, {Key: "b", Value: "eu"}, {Key: "c", Value: "us"}, {Key: "d", Value: "ap"}}
			if backend == "real" {
				kafkatest.ProduceStrings(t, brokers, users, rows)
			}
			args = append(args, "--partitions", "3", "--aggregations", "count,per-region", "--users-topic", users)
			base, _ := startEmostream(t, bin, args)
			if backend == "embedded" {
				kafkatest.ProduceStrings(t, brokers, users, rows)
				time.Sleep(time.Second) // the global table follows its topic
			}
			ws := (time.Now().Add(4*time.Second).UnixMilli()/2000)*2000 + 2000
			var batch []string
			for i, u := range []string{"a", "b", "c", "d", "a", "z"} {
				batch = append(batch, fmt.Sprintf(`{"user_id":%q,"emoji_type":"🔥","timestamp":%d}`, u, ws+int64(10*i)))
			}
			resp, err := http.Post(base+"/api", "application/json", strings.NewReader("["+strings.Join(batch, ",")+"]"))
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusAccepted, resp.StatusCode)
			got := decodeRows(t, kafkatest.ConsumeN(t, brokers, out+"-per-region", 4, 30*time.Second), true)
			row := func(label string, v float64) wire.Row {
				return wire.Row{Aggregation: "per-region", WindowStart: ws, WindowEnd: ws + 2000, Label: label, Value: v}
			}
			require.Equal(t, decodeRowsSorted([]wire.Row{row("eu", 3), row("us", 1), row("ap", 1), row("unknown", 1)}), got)
		})
	}
}
