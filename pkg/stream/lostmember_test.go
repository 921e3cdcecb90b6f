package stream_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/embedded"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// initCounter counts the records of each key in store "counts" and records
// how often it was initialised and the last count it wrote.
type initCounter struct {
	inits *atomic.Int32
	last  *atomic.Int64
	store stream.KeyValueStore[string, int64]
}

func (c *initCounter) Init(ctx stream.ProcessorContext[string, int64]) error {
	c.inits.Add(1)
	var err error
	c.store, err = stream.GetKeyValueStore[string, int64](ctx, "counts")
	return err
}

func (c *initCounter) Process(ctx stream.ProcessorContext[string, int64], rec stream.Record[string, string]) error {
	n, _, err := c.store.Update(rec.Key, func(old int64, _ bool) (int64, error) { return old + 1, nil })
	if err != nil {
		return err
	}
	c.last.Store(n)
	ctx.Forward(stream.Record[string, int64]{Key: rec.Key, Value: n, Timestamp: rec.Timestamp})
	return nil
}

func (c *initCounter) Close() error { return nil }

// TestIntegrationCommitUnknownMemberDropsTasks: when the group coordinator
// answers an offset commit with UNKNOWN_MEMBER_ID (the instance was removed
// from the group during a stall, and its partitions given to others), the
// instance must stop its tasks at once and drop them dirty — no more
// processing, flushing or committing, as Kafka Streams closes lost tasks —
// and rejoin; the recreated task restores from the changelog and the counts
// stay exact. Before, such a "zombie" went on processing and flushing its
// held-back state over its successor's changelog (make smoke CLUSTER=3 saw
// windows with stale counts after a broker SIGSTOP).
func TestIntegrationCommitUnknownMemberDropsTasks(t *testing.T) {
	for _, eager := range []bool{false, true} {
		name := "cooperative"
		if eager {
			name = "eager"
		}
		t.Run(name, func(t *testing.T) {
			b, err := embedded.Start()
			require.NoError(t, err)
			t.Cleanup(func() { _ = b.Close() })
			brokers := b.Addrs()
			in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
			kafkatest.CreateTopic(t, brokers, in, 1)
			kafkatest.CreateTopic(t, brokers, out, 1)

			var inits atomic.Int32
			var last atomic.Int64
			bld := stream.NewBuilder()
			bld.AddStore(stream.KeyValueStoreBuilder("counts", stream.String(), stream.Int64()))
			counted := stream.Process(stream.Source(bld, in, stream.String(), stream.String()), "count", func() stream.Processor[string, string, string, int64] {
				return &initCounter{inits: &inits, last: &last}
			}, "counts")
			counted.To(out, stream.String(), stream.Int64())
			top, err := bld.Build()
			require.NoError(t, err)

			// Commits answer UNKNOWN_MEMBER_ID while failing is set.
			var failing atomic.Bool
			var failed atomic.Int32
			cluster := b.Cluster()
			cluster.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
				cluster.KeepControl()
				if !failing.Load() {
					return nil, nil, false
				}
				r := req.(*kmsg.OffsetCommitRequest)
				resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
				for _, rt := range r.Topics {
					st := kmsg.NewOffsetCommitResponseTopic()
					st.Topic = rt.Topic
					for _, rp := range rt.Partitions {
						sp := kmsg.NewOffsetCommitResponseTopicPartition()
						sp.Partition = rp.Partition
						sp.ErrorCode = 25 // UNKNOWN_MEMBER_ID
						st.Partitions = append(st.Partitions, sp)
					}
					resp.Topics = append(resp.Topics, st)
				}
				failed.Add(1)
				failing.Store(false)
				return resp, nil, true
			})

			logs := &kafkatest.LogBuffer{}
			opts := []stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(kafkatest.UniqueName(t, "app")),
				stream.Logger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))}
			if !eager {
				opts = append(opts, stream.CooperativeRebalancing())
			}
			_, stop := startApp(t, top, opts...)
			produce := func(from, n int) {
				recs := make([]kafkatest.KV, n)
				for i := range recs {
					recs[i] = kafkatest.KV{Key: "k", Value: fmt.Sprint(from + i)}
				}
				kafkatest.ProduceStrings(t, brokers, in, recs)
			}
			produce(0, 100)
			require.Eventually(t, func() bool { return last.Load() == 100 }, 60*time.Second, 10*time.Millisecond)
			require.Equal(t, int32(1), inits.Load())

			failing.Store(true)
			produce(100, 50)
			require.Eventually(t, func() bool { return failed.Load() == 1 }, 30*time.Second, 10*time.Millisecond, "a commit was refused")
			produce(150, 50)
			require.Eventually(t, func() bool { return inits.Load() >= 2 && last.Load() == 200 }, 60*time.Second, 10*time.Millisecond,
				"the task is recreated and counts every record: inits %d, count %d", inits.Load(), last.Load())
			time.Sleep(500 * time.Millisecond)
			require.Equal(t, int64(200), last.Load(), "no record counted twice")
			require.NoError(t, stop())
			require.True(t, strings.Contains(logs.String(), "no longer a member of the group"), "the drop is logged")
		})
	}
}

// flushThenAct makes its state durable before it forwards each record, as
// a processor acting on a wall-clock decision does (pkg/window), and
// records whether FlushStores refused.
type flushThenAct struct {
	inFlush  *atomic.Bool
	arm      *atomic.Bool
	refused  *atomic.Int32
	store    stream.KeyValueStore[string, int64]
	forwards *sync.Map
}

func (p *flushThenAct) Init(ctx stream.ProcessorContext[string, string]) error {
	var err error
	p.store, err = stream.GetKeyValueStore[string, int64](ctx, "seen")
	return err
}

func (p *flushThenAct) Process(ctx stream.ProcessorContext[string, string], rec stream.Record[string, string]) error {
	if err := p.store.Put(rec.Value, 1); err != nil {
		return err
	}
	p.inFlush.Store(true)
	err := ctx.FlushStores()
	p.inFlush.Store(false)
	if err != nil {
		p.refused.Add(1)
		p.arm.Store(false)
		return err
	}
	p.forwards.Store(rec.Value, true)
	return nil
}

func (p *flushThenAct) Close() error { return nil }

// TestIntegrationFlushStoresConfirmsOwnership: FlushStores returns only once
// the group still knows this instance, so what a processor does next (an
// emission after a wall-clock close) cannot follow a successor's restore.
// While a processor is inside FlushStores, the coordinator answers a
// heartbeat with UNKNOWN_MEMBER_ID: FlushStores must refuse, the task be
// dropped, and the instance come back and process the record again.
func TestIntegrationFlushStoresConfirmsOwnership(t *testing.T) {
	b, err := embedded.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	brokers := b.Addrs()
	in := kafkatest.UniqueName(t, "in")
	kafkatest.CreateTopic(t, brokers, in, 1)

	var inFlush, arm atomic.Bool
	var refused atomic.Int32
	forwards := &sync.Map{}
	bld := stream.NewBuilder()
	bld.AddStore(stream.KeyValueStoreBuilder("seen", stream.String(), stream.Int64()))
	stream.Process(stream.Source(bld, in, stream.String(), stream.String()), "act", func() stream.Processor[string, string, string, string] {
		return &flushThenAct{inFlush: &inFlush, arm: &arm, refused: &refused, forwards: forwards}
	}, "seen")
	top, err := bld.Build()
	require.NoError(t, err)

	cluster := b.Cluster()
	cluster.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		// Every heartbeat while armed and inside FlushStores (the probe; a
		// heartbeat of sarama's own that coincides ends the session too).
		if !inFlush.Load() || !arm.Load() {
			return nil, nil, false
		}
		resp := req.(*kmsg.HeartbeatRequest).ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = 25 // UNKNOWN_MEMBER_ID
		return resp, nil, true
	})
	logs := &kafkatest.LogBuffer{}
	_, stop := startApp(t, top, stream.Brokers(brokers...), stream.ApplicationID(kafkatest.UniqueName(t, "app")), stream.CooperativeRebalancing(),
		stream.Logger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	send := func(v string) {
		kafkatest.ProduceStrings(t, brokers, in, []kafkatest.KV{{Key: "k", Value: v}})
	}
	send("first")
	require.Eventually(t, func() bool { _, ok := forwards.Load("first"); return ok }, 60*time.Second, 10*time.Millisecond)
	arm.Store(true)
	send("second")
	require.Eventually(t, func() bool { _, ok := forwards.Load("second"); return ok }, 60*time.Second, 10*time.Millisecond,
		"the record is processed again by the rejoined instance")
	require.NoError(t, stop())
	require.Equal(t, int32(1), refused.Load(), "FlushStores refused once, when the probe said the member was gone")
	require.Contains(t, logs.String(), "no longer a member of the group")
}
