package stream_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestIntegrationRecordCache: with the record cache on (the default), many
// updates of a key between two commits become one changelog record, and a
// new instance restores exact counts from that changelog; with
// CacheMaxBytes(0) every update is a changelog record.
func TestIntegrationRecordCache(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			for _, tc := range []struct {
				name    string
				opts    []stream.Opt
				records func(n, keys int) (lo, hi int64)
			}{
				// One commit at shutdown: at most one record per key.
				{"cached", nil, func(n, keys int) (int64, int64) { return int64(keys), int64(keys) }},
				{"uncached", []stream.Opt{stream.CacheMaxBytes(0)}, func(n, keys int) (int64, int64) { return int64(n), int64(n) }},
				// A budget too small for all keys flushes early, but never
				// loses an update: the count below still restores exactly.
				{"tiny budget", []stream.Opt{stream.CacheMaxBytes(200)}, func(n, keys int) (int64, int64) { return int64(keys) + 1, int64(n) }},
				// A producer buffer of one byte: one record in flight at a
				// time, each send waits for the previous acknowledgement.
				// A budget an acknowledgement failed to return would stop
				// the app at its second record.
				{"producer buffer of one record", []stream.Opt{stream.CacheMaxBytes(0), stream.ProducerBufferBytes(1)}, func(n, keys int) (int64, int64) { return int64(n), int64(n) }},
			} {
				t.Run(tc.name, func(t *testing.T) {
					in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
					appID := kafkatest.UniqueName(t, "app")
					kafkatest.CreateTopic(t, brokers, in, 1)
					kafkatest.CreateTopic(t, brokers, out, 1)
					const n, keys = 2000, 7
					var recs []kafkatest.KV
					want := map[string]int64{}
					for i := range n {
						k := fmt.Sprintf("k%d", i%keys)
						recs = append(recs, kafkatest.KV{Key: k, Value: "x"})
						want[k]++
					}
					kafkatest.ProduceStrings(t, brokers, in, recs)
					top := func() *stream.Topology {
						b := stream.NewBuilder()
						src := stream.Source(b, in, stream.String(), stream.String())
						stream.Count(stream.GroupByKey(src), stream.Materialized[string, int64]{StoreName: "counts"}).
							ToStream().To(out, stream.String(), stream.Int64())
						top, err := b.Build()
						require.NoError(t, err)
						return top
					}
					opts := append([]stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID),
						stream.CommitInterval(time.Hour)}, tc.opts...)
					counts := func(app *stream.App) map[string]int64 {
						q := stream.QueryStore[string, int64](app, "counts", stream.String())
						got := map[string]int64{}
						for k := range want {
							if v, ok, err := q.Get(k); err == nil && ok {
								got[k] = v
							}
						}
						return got
					}
					app, stop := startApp(t, top(), opts...)
					require.Eventually(t, func() bool { return fmt.Sprint(counts(app)) == fmt.Sprint(want) }, 60*time.Second, 20*time.Millisecond)
					require.NoError(t, stop())

					client, err := sarama.NewClient(brokers, kafkatest.SaramaConfig())
					require.NoError(t, err)
					defer client.Close()
					written, err := client.GetOffset(appID+"-counts-changelog", 0, sarama.OffsetNewest)
					require.NoError(t, err)
					lo, hi := tc.records(n, keys)
					require.GreaterOrEqual(t, written, lo, "changelog records")
					require.LessOrEqual(t, written, hi, "changelog records")

					// A new instance restores from the changelog alone
					// (no new input): the counts must be exact.
					app2, stop2 := startApp(t, top(), opts...)
					require.Eventually(t, func() bool { return fmt.Sprint(counts(app2)) == fmt.Sprint(want) }, 60*time.Second, 20*time.Millisecond)
					require.NoError(t, stop2())
				})
			}
		})
	}
}
