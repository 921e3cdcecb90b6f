// Command floor measures what reading a topic costs a Go process before any
// processing: a consumer group that reads every record of the input topic
// from offset 0 and only counts it (issue #14). bench/compare's scale sweep
// runs it on the 16-key point's input beside ours, so its CPU per record is
// the part of ours' figure that the Kafka client spends, measured in the same
// run.
//
//	go run ./bench/floor -brokers 127.0.0.1:29092 -topic T -records N [-client sarama|kgo] [-decode]
//
// -client sarama (the default) is the consumer group pkg/stream's App runs,
// with the consumer settings App.saramaConfig gives it (protocol 3.6, fetch
// wait 100 ms, a 16,384-message channel per partition, read_committed, from
// the oldest offset, no auto-commit); -client kgo is franz-go's consumer
// group with the same isolation and start, for comparison. -decode also
// decodes each value as EmoStream's event JSON (wire.DecodeEvent).
//
// It stops by itself once it has read -records records and prints one JSON
// line: {"client", "records", "wall_s", "cpu_s", "cpu_us_per_record"}, where
// cpu_s is the process's user + system CPU from its start to the last record,
// as bench/compare measures the engines (start-up included).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/emostream/emostream/bench/internal/harness"
	"github.com/emostream/emostream/examples/emostream/wire"
)

type result struct {
	Client     string  `json:"client"`
	Records    int64   `json:"records"`
	WallS      float64 `json:"wall_s"`
	CPUS       float64 `json:"cpu_s"`
	CPUPerRecU float64 `json:"cpu_us_per_record"`
}

func main() {
	brokers := flag.String("brokers", "127.0.0.1:29092", "bootstrap brokers, comma-separated")
	topic := flag.String("topic", "topic1", "topic to read from offset 0")
	records := flag.Int64("records", 0, "stop after this many records (required)")
	client := flag.String("client", "sarama", "sarama (pkg/stream's consumer group) or kgo (franz-go's)")
	decode := flag.Bool("decode", false, "decode each value as an EmoStream event (wire.DecodeEvent)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if *records <= 0 {
		fatal(errors.New("-records must be positive"))
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	group := "emostream-floor-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	bs := harness.SplitList(*brokers)
	var err error
	switch *client {
	case "sarama":
		err = readSarama(ctx, bs, group, *topic, *records, *decode)
	case "kgo":
		err = readKgo(ctx, bs, group, *topic, *records, *decode)
	default:
		err = fmt.Errorf("unknown -client %q", *client)
	}
	if err != nil {
		fatal(err)
	}
	c := harness.SelfCPUSeconds()
	out, _ := json.Marshal(result{Client: *client, Records: *records, WallS: time.Since(start).Seconds(), CPUS: c, CPUPerRecU: c / float64(*records) * 1e6})
	fmt.Println(string(out))
}

// handler counts the records of every claim and closes done at the last.
type handler struct {
	seen, want atomic.Int64
	decode     bool
	done       chan struct{}
	once       sync.Once
	failed     atomic.Value
}

func (h *handler) finish() { h.once.Do(func() { close(h.done) }) }

func (*handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(_ sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		if h.decode {
			if _, err := wire.DecodeEvent(m.Value); err != nil {
				h.failed.CompareAndSwap(nil, err)
				h.finish()
			}
		}
		if h.seen.Add(1) == h.want.Load() {
			h.finish()
		}
	}
	return nil
}

func readSarama(ctx context.Context, brokers []string, group, topic string, n int64, decode bool) error {
	sc := sarama.NewConfig()
	// The consumer settings of pkg/stream's App.saramaConfig.
	sc.Version = sarama.V3_6_0_0
	sc.Consumer.MaxWaitTime = 100 * time.Millisecond
	sc.ChannelBufferSize = 16 << 10
	sc.Consumer.Offsets.AutoCommit.Enable = false
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	g, err := sarama.NewConsumerGroup(brokers, group, sc)
	if err != nil {
		return err
	}
	defer g.Close()
	h := &handler{decode: decode, done: make(chan struct{})}
	h.want.Store(n)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	consumed := make(chan error, 1)
	go func() {
		for cctx.Err() == nil {
			if err := g.Consume(cctx, []string{topic}, h); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	select {
	case <-h.done:
		if err, _ := h.failed.Load().(error); err != nil {
			return err
		}
		return nil
	case err := <-consumed:
		return fmt.Errorf("consumer group stopped after %d records: %v", h.seen.Load(), err)
	case <-ctx.Done():
		return fmt.Errorf("%d of %d records: %w", h.seen.Load(), n, ctx.Err())
	}
}

func readKgo(ctx context.Context, brokers []string, group, topic string, n int64, decode bool) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DisableAutoCommit())
	if err != nil {
		return err
	}
	defer cl.Close()
	var seen int64
	var failed error
	for seen < n && failed == nil {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("%d of %d records: %w", seen, n, ctx.Err())
		}
		fs.EachError(func(_ string, _ int32, err error) { failed = err })
		fs.EachRecord(func(r *kgo.Record) {
			if decode && failed == nil {
				_, failed = wire.DecodeEvent(r.Value)
			}
			seen++
		})
	}
	return failed
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "floor:", err)
	os.Exit(1)
}
