package stream_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/embedded"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

const benchWords = 16

// preload writes n records keyed by one of benchWords words.
func preload(b *testing.B, brokers []string, topic string, n int, partitioner sarama.PartitionerConstructor) {
	cfg := kafkatest.SaramaConfig()
	cfg.Producer.Partitioner = partitioner
	cfg.Producer.Flush.Bytes = 1 << 20
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	p, err := sarama.NewAsyncProducer(brokers, cfg)
	require.NoError(b, err)
	done := make(chan error, 1)
	go func() {
		var firstErr error
		for i := 0; i < n; i++ {
			select {
			case <-p.Successes():
			case e := <-p.Errors():
				if firstErr == nil {
					firstErr = e
				}
			}
		}
		done <- firstErr
	}()
	for i := 0; i < n; i++ {
		p.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("w%d", i%benchWords)), Value: sarama.StringEncoder("x")}
	}
	require.NoError(b, <-done)
	require.NoError(b, p.Close())
}

// BenchmarkCountTopology measures a keyed count (source -> count -> sink) on
// the embedded broker: b.N input records are preloaded, then the timer covers
// starting the App (group join, changelog creation) and processing until the
// store holds all b.N counts. Every record also writes the changelog and the
// output topic with acks=all, as in production.
func BenchmarkCountTopology(b *testing.B) {
	broker, err := embedded.Start(embedded.DefaultPartitions(4))
	require.NoError(b, err)
	defer broker.Close()
	brokers := broker.Addrs()
	in, out := "bench-in", "bench-out"
	kafkatest.CreateTopic(b, brokers, in, 4)
	kafkatest.CreateTopic(b, brokers, out, 4)
	preload(b, brokers, in, b.N, sarama.NewMurmur2Partitioner)

	sb := stream.NewBuilder()
	src := stream.Source(sb, in, stream.String(), stream.String())
	stream.Count(stream.GroupByKey(src), stream.Materialized[string, int64]{StoreName: "counts"}).
		ToStream().To(out, stream.String(), stream.Int64())
	top, err := sb.Build()
	require.NoError(b, err)
	app, err := stream.NewApp(top, stream.Brokers(brokers...), stream.ApplicationID("bench"),
		stream.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(b, err)
	q := stream.QueryStore[string, int64](app, "counts", stream.String())
	total := func() int64 {
		var n int64
		for i := range benchWords {
			v, _, _ := q.Get(fmt.Sprintf("w%d", i))
			n += v
		}
		return n
	}

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { errc <- app.Run(ctx) }()
	for total() < int64(b.N) {
		select {
		case err := <-errc:
			b.Fatalf("app stopped: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	require.Equal(b, int64(b.N), total())
	cancel()
	require.NoError(b, <-errc)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
}

// BenchmarkCountLocal measures the same count without a broker (LocalRunner):
// the cost of the library's own per-record work.
func BenchmarkCountLocal(b *testing.B) {
	sb := stream.NewBuilder()
	src := stream.Source(sb, "in", stream.String(), stream.String())
	stream.Count(stream.GroupByKey(src), stream.Materialized[string, int64]{StoreName: "counts"}).
		ToStream().To("out", stream.String(), stream.Int64())
	top, err := sb.Build()
	require.NoError(b, err)
	d, err := streamtest.New(top, stream.Partitions(4))
	require.NoError(b, err)
	defer d.Close()
	inTopic := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	keys := make([]string, benchWords)
	for i := range keys {
		keys[i] = fmt.Sprintf("w%d", i)
	}
	ts := time.Unix(0, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := inTopic.PipeAt(keys[i%benchWords], "x", ts); err != nil {
			b.Fatal(err)
		}
		if i%1024 == 0 {
			d.RawOutput("out")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
