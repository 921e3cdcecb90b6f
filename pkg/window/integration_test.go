package window_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
	"github.com/emostream/emostream/pkg/window"
)

// TestIntegrationTumblingEmitFinalOnTime runs a 2 s tumbling count with
// emit-final on a broker: exactly one result per (window, key), arriving
// within 1 s of end + grace by the wall clock although no input follows, and
// late records in the DLQ with their headers.
func TestIntegrationTumblingEmitFinalOnTime(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			in, out, late := countTopics(t, brokers)
			const grace = 500 * time.Millisecond
			runCountApp(t, brokers, in, out, late)

			// A window far enough ahead that the app has joined its group.
			ws := (time.Now().Add(8*time.Second).UnixMilli() / 2000) * 2000
			var recs []kafkatest.KV
			for i := range 30 {
				key := []string{"a", "b", "c"}[i%3]
				recs = append(recs, kafkatest.KV{Key: key, Value: strconv.FormatInt(ws+int64(i*60), 10)})
			}
			kafkatest.ProduceStrings(t, brokers, in, recs)

			got := kafkatest.ConsumeN(t, brokers, out, 3, 30*time.Second)
			arrived := time.Now()
			due := time.UnixMilli(ws + 2000).Add(grace)
			require.WithinDuration(t, due, arrived, time.Second, "results must arrive within 1 s of end + grace")
			counts := map[string]int64{}
			ws2 := window.WindowedSerde(stream.String())
			for _, m := range got {
				w, err := ws2.Deserialize([]byte(m.Key))
				require.NoError(t, err)
				require.Equal(t, ws, w.Start.UnixMilli())
				require.Equal(t, ws+2000, w.End.UnixMilli())
				n, err := stream.Int64().Deserialize([]byte(m.Value))
				require.NoError(t, err)
				counts[w.Key] = n
			}
			require.Equal(t, map[string]int64{"a": 10, "b": 10, "c": 10}, counts)

			// A record for the closed window is late.
			kafkatest.ProduceStrings(t, brokers, in, []kafkatest.KV{{Key: "a", Value: strconv.FormatInt(ws+5, 10)}})
			dlq := kafkatest.ConsumeN(t, brokers, late, 1, 30*time.Second)
			require.Equal(t, "late", dlq[0].Headers["error"])
			require.Equal(t, in, dlq[0].Headers["source_topic"])
			require.NotEmpty(t, dlq[0].Headers["source_partition"])
			require.NotEmpty(t, dlq[0].Headers["source_offset"])
			require.Equal(t, strconv.FormatInt(ws+5, 10), dlq[0].Value)

			// Exactly one result per (window, key): nothing more arrives.
			time.Sleep(3 * time.Second)
			all := kafkatest.ConsumeN(t, brokers, out, 3, 5*time.Second)
			require.Len(t, all, 3)
		})
	}
}

// runCountApp runs, until the test ends, a 2 s tumbling count with 500 ms
// grace and emit-final (wall-clock close on) from in to out, whose event time
// is the record value in ms, with late records to late.
func runCountApp(t *testing.T, brokers []string, in, out, late string) {
	t.Cleanup(startCountApp(t, brokers, kafkatest.UniqueName(t, "app"), in, out, late))
}

// countTopics creates the count app's topics under unique names: input and
// output with 2 partitions, the late records' with 1.
func countTopics(t *testing.T, brokers []string) (in, out, late string) {
	in, out, late = kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out"), kafkatest.UniqueName(t, "late")
	kafkatest.CreateTopic(t, brokers, in, 2)
	kafkatest.CreateTopic(t, brokers, out, 2)
	kafkatest.CreateTopic(t, brokers, late, 1)
	return in, out, late
}

// startCountApp starts the windowed count of runCountApp as application
// appID and returns a func that stops it gracefully.
func startCountApp(t *testing.T, brokers []string, appID, in, out, late string) (stop func()) {
	return startCountAppWith(t, brokers, appID, in, out, late, nil)
}

// startCountAppWith is startCountApp with more window options (after the
// count's own) and App options (after brokers, id and a silent logger).
func startCountAppWith(t *testing.T, brokers []string, appID, in, out, late string, wopts []window.Opt, sopts ...stream.Opt) (stop func()) {
	b := stream.NewBuilder()
	src := stream.Source(b, in, stream.String(), stream.String(), stream.WithTimestampExtractor(func(r stream.Record[string, string]) time.Time {
		ms, _ := strconv.ParseInt(r.Value, 10, 64)
		return time.UnixMilli(ms)
	}))
	window.Count(stream.GroupByKey(src), window.OfSizeAndGrace(2*time.Second, 500*time.Millisecond),
		append([]window.Opt{window.Emit(window.OnWindowClose), window.LateRecordsTo(late), window.Named("counts")}, wopts...)...).
		To(out, window.WindowedSerde(stream.String()), stream.Int64())
	top, err := b.Build()
	require.NoError(t, err)
	app, err := stream.NewApp(top, append([]stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID),
		stream.Logger(kafkatest.FailureLogger(t))}, sopts...)...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- app.Run(ctx) }()
	var once sync.Once
	return func() { once.Do(func() { cancel(); require.NoError(t, <-errc) }) }
}
