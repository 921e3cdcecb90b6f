package window_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
	"github.com/emostream/emostream/pkg/window"
)

// TestIntegrationWallClockWaitsForBacklog: records that reached Kafka while
// no instance was running (a crash, a failover) belong to windows whose end
// + grace already passed by the wall clock. They are counted, not declared
// late: the wall clock closes windows only once a task has caught up.
func TestIntegrationWallClockWaitsForBacklog(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			in, out, late := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out"), kafkatest.UniqueName(t, "late")
			kafkatest.CreateTopic(t, brokers, in, 2)
			kafkatest.CreateTopic(t, brokers, out, 2)
			kafkatest.CreateTopic(t, brokers, late, 1)
			// A window that closed 10 s ago by the wall clock.
			ws := (time.Now().Add(-14*time.Second).UnixMilli() / 2000) * 2000
			var recs []kafkatest.KV
			for i := range 40 {
				recs = append(recs, kafkatest.KV{Key: []string{"a", "b"}[i%2], Value: strconv.FormatInt(ws+int64(i*40), 10)})
			}
			// Then one record of the current time, so stream time closes the old window.
			recs = append(recs, kafkatest.KV{Key: "a", Value: strconv.FormatInt(time.Now().UnixMilli(), 10)})
			kafkatest.ProduceStrings(t, brokers, in, recs)

			runCountApp(t, brokers, in, out, late)

			got := kafkatest.ConsumeN(t, brokers, out, 2, 30*time.Second)
			counts := map[string]int64{}
			for _, m := range got {
				w, err := window.WindowedSerde(stream.String()).Deserialize([]byte(m.Key))
				require.NoError(t, err)
				require.Equal(t, ws, w.Start.UnixMilli())
				n, err := stream.Int64().Deserialize([]byte(m.Value))
				require.NoError(t, err)
				counts[w.Key] = n
			}
			require.Equal(t, map[string]int64{"a": 20, "b": 20}, counts)
			require.Empty(t, kafkatest.ConsumeN(t, brokers, late, 0, time.Second))
		})
	}
}
