package window_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
	"github.com/emostream/emostream/pkg/window"
)

// TestIntegrationWallClockWaitsForBacklog: records that reached Kafka while
// no instance was running (a crash, a failover) belong to a window that was
// open when the application last committed and whose end + grace passed by
// the wall clock while it was down. They are counted, not declared late: a
// task working through a backlog judges by the wall clock only as of its last
// commit (stream.InputCompleteAt).
func TestIntegrationWallClockWaitsForBacklog(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			in, out, late := countTopics(t, brokers)
			appID := kafkatest.UniqueName(t, "app")
			// A first run processes a record per key and commits.
			stop := startCountApp(t, brokers, appID, in, out, late)
			t.Cleanup(stop)
			w0 := (time.Now().UnixMilli() / 2000) * 2000
			now := strconv.FormatInt(time.Now().UnixMilli(), 10)
			kafkatest.ProduceStrings(t, brokers, in, []kafkatest.KV{{Key: "a", Value: now}, {Key: "b", Value: now}})
			time.Sleep(1500 * time.Millisecond)
			stop()
			// The next window was open at the stop; wait until it has closed
			// by the wall clock, then write its records: a backlog.
			ws := w0 + 2000
			time.Sleep(time.Until(time.UnixMilli(ws + 2000 + 500 + 500)))
			var recs []kafkatest.KV
			for i := range 40 {
				recs = append(recs, kafkatest.KV{Key: []string{"a", "b"}[i%2], Value: strconv.FormatInt(ws+int64(i*40), 10)})
			}
			// Then one record of the current time, so stream time closes the old window.
			recs = append(recs, kafkatest.KV{Key: "a", Value: strconv.FormatInt(time.Now().UnixMilli(), 10)})
			kafkatest.ProduceStrings(t, brokers, in, recs)

			t.Cleanup(startCountApp(t, brokers, appID, in, out, late))

			// The first run's window w0 (a and b) and the backlog's window ws.
			got := kafkatest.ConsumeN(t, brokers, out, 4, 30*time.Second)
			counts := map[string]int64{}
			for _, m := range got {
				w, err := window.WindowedSerde(stream.String()).Deserialize([]byte(m.Key))
				require.NoError(t, err)
				n, err := stream.Int64().Deserialize([]byte(m.Value))
				require.NoError(t, err)
				counts[fmt.Sprintf("%s@%d", w.Key, w.Start.UnixMilli()-w0)] = n
			}
			require.Equal(t, map[string]int64{"a@0": 1, "b@0": 1, "a@2000": 20, "b@2000": 20}, counts)
			require.Empty(t, kafkatest.ConsumeN(t, brokers, late, 0, time.Second))
		})
	}
}
