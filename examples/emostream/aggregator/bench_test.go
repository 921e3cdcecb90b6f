package aggregator_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/aggregation"
	"github.com/emostream/emostream/examples/emostream/aggregator"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/embedded"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// benchEmojis are the emoji types of the benchmark input, as a load test would
// send them.
var benchEmojis = []string{"🔥", "👍", "👍🏽", "❤️", "😂", "😮", "😢", "🎉", "🇮🇳", "👏", "🙌", "💯", "🤯", "😍", "🥳", "🚀"}

// benchRecordsPerMS sets event time: 50 records per millisecond, so a 2 s
// window holds 100,000 records.
const benchRecordsPerMS = 50

var benchBase = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC).UnixMilli()

// benchEvent is input record i: its emoji and JSON value.
func benchEvent(i int) (string, []byte, int64) {
	emoji := benchEmojis[i%len(benchEmojis)]
	ts := benchBase + int64(i/benchRecordsPerMS)
	v, _ := wire.Event{UserID: fmt.Sprintf("user-%d", i%1000), EmojiType: emoji, Timestamp: ts}.Marshal()
	return emoji, v, ts
}

// benchResults is how many (window, emoji) results n records produce.
func benchResults(n int) int {
	seen := map[[2]int64]bool{}
	for i := 0; i < n; i++ {
		ts := benchBase + int64(i/benchRecordsPerMS)
		seen[[2]int64{ts / 2000, int64(i % len(benchEmojis))}] = true
	}
	return len(seen)
}

// BenchmarkAggregator measures the EmoStream aggregator topology (the one
// `emostream aggregate` runs, with wall-clock close off so historic input is
// not late) on the embedded broker: b.N JSON emoji records are preloaded into
// 4 partitions, followed by one record per partition far ahead in event time
// that closes every window; the timer covers starting the App (group join,
// internal topics) and processing until topic2 holds every window result.
// Changelog writes, results and commits go through Kafka with acks=all.
// records/s counts the start; steady-records/s starts at the first
// processed batch.
func BenchmarkAggregator(b *testing.B) {
	broker, err := embedded.Start(embedded.DefaultPartitions(4))
	require.NoError(b, err)
	defer broker.Close()
	brokers := broker.Addrs()
	in, out, dlq := "bench-topic1", "bench-topic2", "bench-topic1.dlq"
	for _, t := range []string{in, out, dlq} {
		kafkatest.CreateTopic(b, brokers, t, 4)
	}
	preloadEvents(b, brokers, in, b.N)
	want := benchResults(b.N)

	cfg := aggregator.Config{InputTopic: in, OutputTopic: out, DLQTopic: dlq, Brokers: brokers,
		StreamTimeOnly: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	top, err := aggregator.Topology(cfg)
	require.NoError(b, err)
	app, err := stream.NewApp(top, aggregator.Options(cfg)...)
	require.NoError(b, err)

	consumer, err := sarama.NewConsumer(brokers, kafkatest.SaramaConfig())
	require.NoError(b, err)
	defer consumer.Close()
	results := make(chan struct{}, 1024)
	for p := range int32(4) {
		pc, err := consumer.ConsumePartition(out, p, sarama.OffsetOldest)
		require.NoError(b, err)
		defer pc.Close()
		go func() {
			for range pc.Messages() {
				results <- struct{}{}
			}
		}()
	}

	reg := prometheus.NewRegistry()
	require.NoError(b, reg.Register(app.Collector()))
	// processed reads the App's input counter (input records, all topics).
	processed := func() float64 {
		mfs, err := reg.Gather()
		require.NoError(b, err)
		var n float64
		for _, mf := range mfs {
			if mf.GetName() == "stream_records_in_total" {
				for _, m := range mf.GetMetric() {
					n += m.GetCounter().GetValue()
				}
			}
		}
		return n
	}

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { errc <- app.Run(ctx) }()
	// The steady rate starts at the first processed batch, after the group
	// join and the internal topics.
	var steadyStart time.Time
	var steadyFrom float64
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for got := 0; got < want; {
		select {
		case <-results:
			got++
		case <-tick.C:
			if steadyStart.IsZero() {
				if n := processed(); n > 0 {
					steadyStart, steadyFrom = time.Now(), n
				}
			}
		case err := <-errc:
			b.Fatalf("app stopped: %v", err)
		case <-time.After(2 * time.Minute):
			b.Fatalf("%d of %d results after 2 minutes", got, want)
		}
	}
	end := time.Now()
	b.StopTimer()
	cancel()
	require.NoError(b, <-errc)
	b.ReportMetric(float64(b.N)/end.Sub(start).Seconds(), "records/s")
	if !steadyStart.IsZero() {
		b.ReportMetric((float64(b.N+4)-steadyFrom)/end.Sub(steadyStart).Seconds(), "steady-records/s")
	}
}

// preloadEvents writes n benchmark events keyed by emoji (partitioned as the
// ingest API does), then one record per partition a minute ahead that closes
// all their windows.
func preloadEvents(b *testing.B, brokers []string, topic string, n int) {
	produce := func(partitioner sarama.PartitionerConstructor, msgs func(in chan<- *sarama.ProducerMessage) int) {
		cfg := kafkatest.SaramaConfig()
		cfg.Producer.Partitioner = partitioner
		cfg.Producer.Flush.Bytes = 1 << 20
		cfg.Producer.Flush.Frequency = 5 * time.Millisecond
		p, err := sarama.NewAsyncProducer(brokers, cfg)
		require.NoError(b, err)
		var sent int
		done := make(chan error, 1)
		acks := make(chan int, 1)
		go func() {
			var firstErr error
			want, got := -1, 0
			for want < 0 || got < want {
				select {
				case want = <-acks:
				case <-p.Successes():
					got++
				case e := <-p.Errors():
					got++
					if firstErr == nil {
						firstErr = e
					}
				}
			}
			done <- firstErr
		}()
		sent = msgs(p.Input())
		acks <- sent
		require.NoError(b, <-done)
		require.NoError(b, p.Close())
	}
	produce(sarama.NewMurmur2Partitioner, func(in chan<- *sarama.ProducerMessage) int {
		for i := 0; i < n; i++ {
			emoji, v, ts := benchEvent(i)
			in <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(emoji), Value: sarama.ByteEncoder(v), Timestamp: time.UnixMilli(ts)}
		}
		return n
	})
	end := benchBase + int64(n/benchRecordsPerMS) + 60_000
	v, _ := wire.Event{UserID: "closer", EmojiType: "🏁", Timestamp: end}.Marshal()
	produce(sarama.NewManualPartitioner, func(in chan<- *sarama.ProducerMessage) int {
		for q := range int32(4) {
			in <- &sarama.ProducerMessage{Topic: topic, Partition: q, Key: sarama.StringEncoder("🏁"), Value: sarama.ByteEncoder(v), Timestamp: time.UnixMilli(end)}
		}
		return 4
	})
}

// BenchmarkAggregatorLocal is the same topology without a broker
// (streamtest): the library's and the topology's own per-record cost.
func BenchmarkAggregatorLocal(b *testing.B) {
	top, err := aggregator.Topology(aggregator.Config{StreamTimeOnly: true})
	require.NoError(b, err)
	d, err := streamtest.New(top, stream.Partitions(4), stream.StartTime(time.UnixMilli(benchBase)))
	require.NoError(b, err)
	defer d.Close()
	raw := streamtest.NewInputTopic(d, "topic1", stream.String(), stream.String())
	keys, vals, times := make([][]byte, b.N), make([][]byte, b.N), make([]time.Time, b.N)
	for i := range b.N {
		emoji, v, ts := benchEvent(i)
		keys[i], vals[i], times[i] = []byte(emoji), v, time.UnixMilli(ts)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := raw.PipeRaw(keys[i], vals[i], times[i]); err != nil {
			b.Fatal(err)
		}
		if i%4096 == 0 {
			d.RawOutput("topic2")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAggregatorLocalAggregations is BenchmarkAggregatorLocal with the
// extra aggregations beside the count: what distinct-users and top3 add per
// record.
func BenchmarkAggregatorLocalAggregations(b *testing.B) {
	for _, bc := range []struct {
		name string
		aggs []aggregation.Aggregation
	}{
		{"count", nil},
		{"count+distinct-users", []aggregation.Aggregation{aggregation.DistinctUsers()}},
		{"count+top3", []aggregation.Aggregation{aggregation.TopK(3)}},
		{"all", aggregation.Builtin()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			top, err := aggregator.Topology(aggregator.Config{StreamTimeOnly: true, Aggregations: bc.aggs})
			require.NoError(b, err)
			d, err := streamtest.New(top, stream.Partitions(4), stream.StartTime(time.UnixMilli(benchBase)))
			require.NoError(b, err)
			defer d.Close()
			raw := streamtest.NewInputTopic(d, "topic1", stream.String(), stream.String())
			keys, vals, times := make([][]byte, b.N), make([][]byte, b.N), make([]time.Time, b.N)
			for i := range b.N {
				emoji, v, ts := benchEvent(i)
				keys[i], vals[i], times[i] = []byte(emoji), v, time.UnixMilli(ts)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := raw.PipeRaw(keys[i], vals[i], times[i]); err != nil {
					b.Fatal(err)
				}
				if i%4096 == 0 {
					for _, topic := range []string{"topic2", "topic2-distinct-users", "topic2-top3"} {
						d.RawOutput(topic)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
