package stream_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestIntegrationWritersAgree runs the same topology over the same input with
// the default writer (franz-go's kgo) and with SaramaProducer, and compares
// every field a reader of the output and of the changelog can see: keys
// (null ones too), values, tombstones, headers, timestamps (event time from
// 2001, which a delivery timeout counted from the record's timestamp would
// fail), partitions and offsets (each record written once, in order).
func TestIntegrationWritersAgree(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			in := kafkatest.UniqueName(t, "in")
			// One input partition, one task: the order of the writes, and so
			// the offsets, depend on the writer only.
			kafkatest.CreateTopic(t, brokers, in, 1)
			base := time.Date(2001, 9, 9, 1, 46, 40, 0, time.UTC)
			var recs []kafkatest.KV
			for i := range 120 {
				kv := kafkatest.KV{Key: fmt.Sprintf("k%d", i%7), Value: fmt.Sprintf("v%d", i), Timestamp: base.Add(time.Duration(i) * time.Second)}
				switch i % 5 {
				case 1:
					kv.Headers = map[string]string{"trace": fmt.Sprint(i), "empty": ""}
				case 2:
					kv.Tombstone = true
				}
				recs = append(recs, kv)
			}
			kafkatest.ProduceStrings(t, brokers, in, recs)
			// 120 passed through; one count per record with a value.
			const passed, counted = 120, 96

			type outputs struct{ pass, counts, changelog []kafkatest.Message }
			run := func(name string, opts ...stream.Opt) outputs {
				pass, counts := kafkatest.UniqueName(t, name+"-pass"), kafkatest.UniqueName(t, name+"-counts")
				kafkatest.CreateTopic(t, brokers, pass, 2)
				kafkatest.CreateTopic(t, brokers, counts, 2)
				b := stream.NewBuilder()
				src := stream.Source(b, in, stream.String(), stream.Bytes())
				src.To(pass, stream.String(), stream.Bytes())
				values := stream.MapValues(src.Filter(func(_ string, v []byte) bool { return v != nil }), func(_ string, v []byte) string { return string(v) })
				stream.Count(stream.GroupByKey(values, stream.Grouped[string, string]{KeySerde: stream.String(), ValueSerde: stream.String()}),
					stream.Materialized[string, int64]{StoreName: "counts"}).
					ToStream().To(counts, stream.String(), stream.Int64())
				top, err := b.Build()
				require.NoError(t, err)
				appID := kafkatest.UniqueName(t, name)
				// No record cache: every update is written, so both runs
				// write the same sequence whatever the commit timing.
				_, stop := startApp(t, top, append(opts, stream.Brokers(brokers...), stream.ApplicationID(appID), stream.CacheMaxBytes(0))...)
				var o outputs
				o.pass = kafkatest.ConsumeN(t, brokers, pass, passed, 60*time.Second)
				o.counts = kafkatest.ConsumeN(t, brokers, counts, counted, 60*time.Second)
				o.changelog = kafkatest.ConsumeN(t, brokers, appID+"-counts-changelog", counted, 60*time.Second)
				require.NoError(t, stop())
				for _, ms := range [][]kafkatest.Message{o.pass, o.counts, o.changelog} {
					for i := range ms {
						ms[i].Topic = ""
					}
				}
				return o
			}
			kgoOut := run("kgo")
			saramaOut := run("sarama", stream.SaramaProducer())
			require.Equal(t, saramaOut.pass, kgoOut.pass, "pass-through topic")
			require.Equal(t, saramaOut.counts, kgoOut.counts, "count results")
			require.Equal(t, saramaOut.changelog, kgoOut.changelog, "changelog")
			// And both are what was sent.
			var tombstones, headers int
			for _, m := range kgoOut.pass {
				if m.Tombstone {
					tombstones++
				} else {
					var n int
					_, err := fmt.Sscanf(m.Value, "v%d", &n)
					require.NoError(t, err)
					require.True(t, base.Add(time.Duration(n)*time.Second).Equal(m.Timestamp), "timestamp of %s: %v", m.Value, m.Timestamp)
				}
				if m.Headers["trace"] != "" {
					headers++
					require.Contains(t, m.Headers, "empty")
				}
			}
			require.Equal(t, 24, tombstones)
			require.Equal(t, 24, headers)
		})
	}
}
