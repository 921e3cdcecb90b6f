package stream_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream/embedded"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// gokaSaramaConfig returns the sarama configuration of the goka peer: goka's
// own defaults (goka.DefaultConfig: copartitioning balancer, snappy, 100ms /
// 64KiB producer flush) with the protocol version the embedded broker speaks,
// streams read from the oldest offset and acks=all, the guarantee our App
// insists on. It is the processor's own configuration (goka's global config
// is left alone); each builder gets a fresh copy because goka's builders write
// ClientID (and the producer's Partitioner) into the config they are given,
// which a client built earlier from the same value still reads.
func gokaSaramaConfig() *sarama.Config {
	cfg := goka.DefaultConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	return cfg
}

// BenchmarkGokaCount is the peer of [BenchmarkCountTopology]: the same keyed
// count over the same input (b.N records keyed by one of benchWords words,
// preloaded into a 4-partition topic on the embedded broker), done by a plain
// goka processor whose group table (an Int64 per word, persisted to the
// compacted topic "<group>-table" with acks=all) plays the part of our count
// store and its changelog. It is a floor to measure the library against, not
// an identical workload: goka writes only the table, where the library also
// writes the output topic, and goka commits input offsets with sarama's
// auto-commit rather than after the produced records are acknowledged.
//
// The timer covers, as for BenchmarkCountTopology, everything from building
// the processor (which checks the input topic and creates the table topic)
// through the group join, rebalance and (empty) table recovery to the moment
// the callback has counted the b.N-th record. Broker start, topic creation and
// preloading are outside the timer; so are the final check that the table
// sums to b.N and the shutdown.
func BenchmarkGokaCount(b *testing.B) {
	broker, err := embedded.Start(embedded.DefaultPartitions(4))
	require.NoError(b, err)
	defer broker.Close()
	brokers := broker.Addrs()
	in := goka.Stream("goka-bench-in")
	group := goka.Group("goka-bench")
	kafkatest.CreateTopic(b, brokers, string(in), 4)
	// goka partitions keys with sarama's FNV-1a hash partitioner by default,
	// so the preloaded words land where goka's Get looks for them.
	preload(b, brokers, string(in), b.N, sarama.NewHashPartitioner)

	var processed atomic.Int64
	reached := make(chan struct{})
	want := int64(b.N)
	count := func(ctx goka.Context, _ any) {
		n, _ := ctx.Value().(int64)
		ctx.SetValue(n + 1)
		if processed.Add(1) == want {
			close(reached)
		}
	}
	tm := goka.NewTopicManagerConfig()
	// goka's defaults are replication 2, which one broker cannot satisfy.
	tm.Table.Replication = 1
	tm.Stream.Replication = 1

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)

	b.ResetTimer()
	start := time.Now()
	proc, err := goka.NewProcessor(brokers,
		goka.DefineGroup(group,
			goka.Input(in, new(codec.String), count),
			goka.Persist(new(codec.Int64)),
		),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(gokaSaramaConfig())),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(gokaSaramaConfig())),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(gokaSaramaConfig())),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(gokaSaramaConfig(), tm)),
		goka.WithStorageBuilder(storage.MemoryBuilder()),
		goka.WithLogger(log.New(io.Discard, "", 0)),
	)
	require.NoError(b, err)
	go func() { errc <- proc.Run(ctx) }()
	select {
	case <-reached:
	case err := <-errc:
		b.Fatalf("processor stopped after %d of %d records: %v", processed.Load(), b.N, err)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	// Processor.Get dereferences the partition's storage, which is only set
	// once the partition has recovered; reaching b.N implies the processor is
	// running, but wait for it explicitly rather than rely on that.
	waitCtx, waitCancel := context.WithTimeout(ctx, 30*time.Second)
	require.NoError(b, proc.WaitForReadyContext(waitCtx))
	waitCancel()
	var total int64
	for i := range benchWords {
		v, err := proc.Get(fmt.Sprintf("w%d", i))
		require.NoError(b, err)
		n, _ := v.(int64)
		total += n
	}
	require.Equal(b, want, total)
	require.Equal(b, want, processed.Load(), "records counted twice")

	cancel()
	require.NoError(b, <-errc)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
}
