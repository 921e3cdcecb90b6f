package stream_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/embedded"
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

// TestProduceFailureFailsRuntime checks, for both writers, what happens
// when Kafka keeps refusing the App's writes (the embedded broker answers
// every produce request with NOT_ENOUGH_REPLICAS, retriable: an in-sync
// replica set below min.insync.replicas). Either the producer gives up after
// its retry budget or a commit's wait for acknowledgements times out first;
// both fail the runtime with an error saying which, and neither commits an
// input offset past a record that was not written. Here Run returns the
// failure (RestartOnFailure(0, …)); by default it would restart the
// runtime. An App started after Kafka takes writes again writes every
// record: nothing is lost.
func TestProduceFailureFailsRuntime(t *testing.T) {
	for _, w := range []struct {
		name string
		opts []stream.Opt
	}{
		{"kgo", nil},
		{"sarama", []stream.Opt{stream.SaramaProducer()}},
	} {
		for _, mode := range []struct {
			name   string
			opts   []stream.Opt
			err    func(out string) string
			within time.Duration
			// slowWarn: the commit warns that it is still waiting, half
			// way to its 2 s ack timeout.
			slowWarn bool
		}{
			// 3 tries 100 ms apart (and kgo's metadata refreshes as often:
			// with its default of one per 5 s this took over 10 s); the
			// commit would wait for a minute.
			{"retries exhausted", []stream.Opt{stream.ProducerRetries(2), stream.AckTimeout(time.Minute)},
				func(out string) string {
					return "produce to " + out + " failed, records could be lost so the application stops"
				}, 8 * time.Second, false},
			// The default budget (240 tries, a minute); the commit waits 2 s,
			// then the shutdown up to its 8 s deadline for the refused writes.
			{"acks time out", []stream.Opt{stream.AckTimeout(2 * time.Second)},
				func(string) string { return "records not acknowledged within 2s" }, 20 * time.Second, true},
		} {
			t.Run(w.name+"/"+mode.name, func(t *testing.T) {
				testProduceFailure(t, append(append([]stream.Opt{}, w.opts...), mode.opts...), w.opts, mode.err, mode.within, mode.slowWarn)
			})
		}
	}
}

func testProduceFailure(t *testing.T, opts, restartOpts []stream.Opt, wantErr func(out string) string, within time.Duration, slowWarn bool) {
	b, err := embedded.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	brokers := b.Addrs()
	in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
	kafkatest.CreateTopic(t, brokers, in, 1)
	kafkatest.CreateTopic(t, brokers, out, 1)
	const n = 5
	var recs []kafkatest.KV
	for i := range n {
		recs = append(recs, kafkatest.KV{Key: fmt.Sprintf("k%d", i), Value: fmt.Sprintf("v%d", i)})
	}
	kafkatest.ProduceStrings(t, brokers, in, recs)

	var failing atomic.Bool
	var refused atomic.Int32
	cluster := b.Cluster()
	cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if !failing.Load() {
			return nil, nil, false
		}
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, pt := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = pt.Topic, pt.TopicID
			for _, pp := range pt.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = pp.Partition
				rp.ErrorCode = kerr.NotEnoughReplicas.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		refused.Add(1)
		return resp, nil, true
	})
	failing.Store(true)

	logs := &kafkatest.LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the failing app's log:\n%s", logs)
		}
	})
	top := func() *stream.Topology {
		bld := stream.NewBuilder()
		stream.Source(bld, in, stream.String(), stream.String()).To(out, stream.String(), stream.String())
		top, err := bld.Build()
		require.NoError(t, err)
		return top
	}
	appID := kafkatest.UniqueName(t, "app")
	app, err := stream.NewApp(top(), append([]stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID),
		stream.CommitInterval(100 * time.Millisecond), stream.RestartOnFailure(0, time.Second),
		stream.Logger(slog.New(slog.NewTextHandler(logs, nil)))}, opts...)...)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	start := time.Now()
	runErr := app.Run(ctx)
	took := time.Since(start)
	require.Error(t, runErr, "Run returned no error although Kafka refused every write")
	require.NoError(t, ctx.Err(), "the runtime did not fail by itself within 45 s")
	require.ErrorContains(t, runErr, wantErr(out))
	require.Less(t, took, within, "failed only after %v", took)
	require.Positive(t, refused.Load())
	if slowWarn {
		require.Contains(t, logs.String(), `level=WARN msg="waiting for Kafka to acknowledge writes"`)
		require.Contains(t, logs.String(), "waited=1s fails_after=2s")
	}

	// No input offset was committed past a record whose write failed.
	admin, err := sarama.NewClusterAdmin(brokers, kafkatest.SaramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	offs, err := admin.ListConsumerGroupOffsets(appID, map[string][]int32{in: {0}})
	require.NoError(t, err)
	if blk := offs.GetBlock(in, 0); blk != nil {
		require.LessOrEqual(t, blk.Offset, int64(0), "committed input offset %d covers records whose write failed", blk.Offset)
	}

	// Kafka takes writes again: a new App writes every record.
	failing.Store(false)
	_, stop := startApp(t, top(), append([]stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID)}, restartOpts...)...)
	got := kafkatest.ConsumeN(t, brokers, out, n, 60*time.Second)
	require.NoError(t, stop())
	var values []string
	for _, m := range got {
		values = append(values, m.Value)
	}
	require.ElementsMatch(t, []string{"v0", "v1", "v2", "v3", "v4"}, values)
}
