package stream_test

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/embedded"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// completeProbe watches InputCompleteAt from a wall-clock punctuation (as a
// windowed aggregation closing windows by the wall clock does) and records,
// for every record it processes, the latest InputCompleteAt seen before it.
type completeProbe struct {
	mu       sync.Mutex
	maxAt    time.Time
	judged   map[string]time.Time // value -> InputCompleteAt seen before it
	written  map[string]time.Time // value -> record timestamp
	caughtUp atomic.Bool
}

func (p *completeProbe) observe(ctx stream.ProcessorContext[string, string]) {
	at := ctx.InputCompleteAt()
	p.mu.Lock()
	if at.After(p.maxAt) {
		p.maxAt = at
	}
	p.mu.Unlock()
	p.caughtUp.Store(ctx.CaughtUp())
}

func (p *completeProbe) Init(ctx stream.ProcessorContext[string, string]) error {
	ctx.Schedule(5*time.Millisecond, stream.WallClockTime, func(time.Time) error {
		p.observe(ctx)
		return nil
	})
	return nil
}

func (p *completeProbe) Process(ctx stream.ProcessorContext[string, string], rec stream.Record[string, string]) error {
	p.mu.Lock()
	p.judged[rec.Value] = p.maxAt
	p.written[rec.Value] = rec.Timestamp
	p.mu.Unlock()
	p.observe(ctx)
	return nil
}

func (p *completeProbe) Close() error { return nil }

// TestStalledFetchesKeepInputIncomplete: while the broker holds the
// application's fetches back for 3 s (as a slow or restarting broker, or a
// paused process, does), the records written meanwhile are in Kafka but
// not fetched. The task must not count as caught up on the high watermark
// of its last fetch: InputCompleteAt must not pass the time any of those
// records was written, or a window closed by the wall clock would declare
// them late although they were on time.
func TestStalledFetchesKeepInputIncomplete(t *testing.T) {
	b, err := embedded.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	brokers := b.Addrs()
	in := kafkatest.UniqueName(t, "in")
	kafkatest.CreateTopic(t, brokers, in, 1)

	probe := &completeProbe{judged: map[string]time.Time{}, written: map[string]time.Time{}}
	bld := stream.NewBuilder()
	stream.Process(stream.Source(bld, in, stream.String(), stream.String()), "probe", func() stream.Processor[string, string, string, string] {
		return probe
	})
	top, err := bld.Build()
	require.NoError(t, err)

	// Fetches wait while stallUntil lies ahead (the other requests are
	// answered, unless they queue behind a held fetch on its connection).
	var stallUntil atomic.Int64
	cluster := b.Cluster()
	cluster.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if d := time.Until(time.Unix(0, stallUntil.Load())); d > 0 {
			cluster.SleepControl(func() { time.Sleep(d) })
		}
		return nil, nil, false
	})

	cfg := kafkatest.SaramaConfig()
	cfg.Producer.Return.Successes = true
	producer, err := sarama.NewSyncProducer(brokers, cfg)
	require.NoError(t, err)
	defer producer.Close()
	send := func(v string) {
		_, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(v), Timestamp: time.Now()})
		require.NoError(t, err)
	}

	_, stop := startApp(t, top, stream.Brokers(brokers...), stream.ApplicationID(kafkatest.UniqueName(t, "app")),
		stream.WallClockInterval(5*time.Millisecond), stream.SessionTimeout(30*time.Second), stream.HeartbeatInterval(time.Second))
	send("before")
	require.Eventually(t, func() bool {
		probe.mu.Lock()
		defer probe.mu.Unlock()
		_, ok := probe.judged["before"]
		return ok && time.Since(probe.maxAt) < 500*time.Millisecond
	}, 60*time.Second, 10*time.Millisecond, "caught up before the stall")

	stallUntil.Store(time.Now().Add(3 * time.Second).UnixNano())
	time.Sleep(300 * time.Millisecond) // a fetch is held now
	const n = 12
	for i := range n {
		send(fmt.Sprintf("stalled-%d", i))
		time.Sleep(150 * time.Millisecond)
	}
	require.Eventually(t, func() bool {
		probe.mu.Lock()
		defer probe.mu.Unlock()
		return len(probe.judged) == n+1
	}, 60*time.Second, 10*time.Millisecond)
	require.Eventually(t, probe.caughtUp.Load, 10*time.Second, 10*time.Millisecond, "caught up after the stall")
	require.NoError(t, stop())

	probe.mu.Lock()
	defer probe.mu.Unlock()
	for i := range n {
		v := fmt.Sprintf("stalled-%d", i)
		// A few milliseconds of slack: a record's timestamp is taken by its
		// producer before the broker appends it.
		require.False(t, probe.judged[v].After(probe.written[v].Add(20*time.Millisecond)),
			"%s written at %s was still in Kafka when the input was declared complete as of %s (%v later)",
			v, probe.written[v].Format("15:04:05.000"), probe.judged[v].Format("15:04:05.000"), probe.judged[v].Sub(probe.written[v]))
	}
}

// TestStalledPartitionIsLogged: a partition that delivers nothing while
// records wait is reported, once, and its recovery too. Four cases on one
// app: an idle partition whose last transaction left a commit marker (one
// offset below the high watermark that is never delivered) is not a stall;
// fetches held back by the broker while records are written are one (the
// leader answers nothing on that connection meanwhile); a task blocked in
// its processor while its claim buffers records is one; and a single
// record one offset below the high watermark that the fetches do not
// bring (while the leader answers) is one.
func TestStalledPartitionIsLogged(t *testing.T) {
	defer stream.SetStallAfter(700 * time.Millisecond)()
	b, err := embedded.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	brokers := b.Addrs()
	in := kafkatest.UniqueName(t, "in")
	kafkatest.CreateTopic(t, brokers, in, 1)

	var processed atomic.Int32
	block := make(chan struct{})
	var blockOn atomic.Value // the value whose processing waits for block
	blockOn.Store("")
	bld := stream.NewBuilder()
	stream.Source(bld, in, stream.String(), stream.String()).Peek(func(_, v string) {
		if v == blockOn.Load().(string) {
			<-block
		}
		processed.Add(1)
	})
	top, err := bld.Build()
	require.NoError(t, err)

	var stallUntil atomic.Int64
	// While emptyAt > 0, the app's consumer's fetches (the ones that wait
	// for data) are answered with no records and emptyAt as the high
	// watermark, a little later; a one-off fetch that does not wait (the
	// runtime's probe) is answered as usual.
	var emptyAt atomic.Int64
	cluster := b.Cluster()
	cluster.ControlKey(int16(kmsg.Fetch), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if d := time.Until(time.Unix(0, stallUntil.Load())); d > 0 {
			cluster.SleepControl(func() { time.Sleep(d) })
		}
		req := kreq.(*kmsg.FetchRequest)
		hwm := emptyAt.Load()
		if hwm == 0 || req.MaxWaitMillis == 0 {
			return nil, nil, false
		}
		cluster.SleepControl(func() { time.Sleep(20 * time.Millisecond) })
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			ft := kmsg.NewFetchResponseTopic()
			ft.Topic, ft.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				fp := kmsg.NewFetchResponseTopicPartition()
				fp.Partition, fp.HighWatermark, fp.LastStableOffset, fp.PreferredReadReplica = rp.Partition, hwm, hwm, -1
				ft.Partitions = append(ft.Partitions, fp)
			}
			resp.Topics = append(resp.Topics, ft)
		}
		return resp, nil, true
	})

	logs := &kafkatest.LogBuffer{}
	_, stop := startApp(t, top, stream.Brokers(brokers...), stream.ApplicationID(kafkatest.UniqueName(t, "app")),
		stream.SessionTimeout(30*time.Second), stream.HeartbeatInterval(time.Second),
		stream.Logger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("app log:\n%s", logs.String())
		}
	})
	stalls := func() int { return strings.Count(logs.String(), "partition stalled") }
	resumed := func() int { return strings.Count(logs.String(), "partition delivering again") }

	// 1. One record in a committed transaction: the partition ends with its
	// commit marker. Idle for several stall periods: no warning.
	tcfg := kafkatest.SaramaConfig()
	tcfg.Producer.Transaction.ID = kafkatest.UniqueName(t, "txn")
	txn, err := sarama.NewSyncProducer(brokers, tcfg)
	require.NoError(t, err)
	defer txn.Close()
	require.NoError(t, txn.BeginTxn())
	_, _, err = txn.SendMessage(&sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder("in-txn")})
	require.NoError(t, err)
	require.NoError(t, txn.CommitTxn())
	require.Eventually(t, func() bool { return processed.Load() == 1 }, 60*time.Second, 10*time.Millisecond)
	time.Sleep(3 * time.Second)
	require.Zero(t, stalls(), "an idle partition ending with a commit marker was reported stalled")

	cfg := kafkatest.SaramaConfig()
	cfg.Producer.Return.Successes = true
	producer, err := sarama.NewSyncProducer(brokers, cfg)
	require.NoError(t, err)
	defer producer.Close()
	send := func(v string) {
		_, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(v)})
		require.NoError(t, err)
	}

	// 2. Fetches held for 3 s while three records are written.
	stallUntil.Store(time.Now().Add(3 * time.Second).UnixNano())
	time.Sleep(300 * time.Millisecond) // a fetch is held now
	for i := range 3 {
		send(fmt.Sprintf("held-%d", i))
	}
	require.Eventually(t, func() bool { return stalls() == 1 }, 10*time.Second, 10*time.Millisecond, "held fetches not reported")
	require.Eventually(t, func() bool { return processed.Load() == 4 && resumed() == 1 }, 30*time.Second, 10*time.Millisecond, "no recovery reported")
	require.Contains(t, logs.String(), "topic="+in+" partition=0")

	// 3. The processor blocks on a record while more arrive.
	blockOn.Store("blocker")
	send("blocker")
	send("after-0")
	send("after-1")
	require.Eventually(t, func() bool { return stalls() == 2 }, 10*time.Second, 10*time.Millisecond, "blocked processing not reported")
	require.Contains(t, logs.String(), `reason="records wait below its high watermark"`)
	close(block)
	require.Eventually(t, func() bool { return processed.Load() == 7 && resumed() == 2 }, 30*time.Second, 10*time.Millisecond)

	// 4. One record, the only one past the next offset (as the first
	// record of an idle partition is), that the fetches do not bring: the
	// high watermark is one past the next offset, as after a commit marker,
	// but this offset holds a record.
	client, err := sarama.NewClient(brokers, kafkatest.SaramaConfig())
	require.NoError(t, err)
	defer client.Close()
	end, err := client.GetOffset(in, 0, sarama.OffsetNewest)
	require.NoError(t, err)
	emptyAt.Store(end + 1)
	time.Sleep(300 * time.Millisecond) // a fetch that waited for data before has been answered
	send("unfetched")
	require.Eventually(t, func() bool { return stalls() == 3 }, 10*time.Second, 10*time.Millisecond, "a single undelivered record not reported")
	require.Contains(t, logs.String(), `reason="a record waits at its next offset"`)
	require.EqualValues(t, 7, processed.Load())
	emptyAt.Store(0)
	require.Eventually(t, func() bool { return processed.Load() == 8 && resumed() == 3 }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, stop())
	require.Equal(t, 3, stalls(), "each stall is reported once")
	// At debug level each report comes with the client's goroutines.
	require.Equal(t, 3, strings.Count(logs.String(), "goroutines of the Kafka client and the runtime at the stall"))
	require.Contains(t, logs.String(), "github.com/IBM/sarama.(*partitionConsumer)")
}

// TestUnstartedClaimIsLoggedAndRestarted: sarama starts a claim only once
// its client's cached metadata shows the partition with a leader, and does
// not refresh that cache itself (its periodic refresh comes every 10
// minutes). Metadata answers that show the input partition without a
// leader (and without an error, so sarama does not retry) when the session
// begins leave the task assigned and idle: the runtime must say so, and
// refresh the metadata so that the claim starts once the partition is
// readable again.
func TestUnstartedClaimIsLoggedAndRestarted(t *testing.T) {
	defer stream.SetStallAfter(700 * time.Millisecond)()
	b, err := embedded.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	brokers := b.Addrs()
	in := kafkatest.UniqueName(t, "in")
	kafkatest.CreateTopic(t, brokers, in, 1)
	cluster := b.Cluster()
	// Read before the control is installed: the cluster's own calls would
	// wait for the control function that makes them.
	info := cluster.TopicInfo(in)
	require.NotNil(t, info)
	host, portStr, err := net.SplitHostPort(brokers[0])
	require.NoError(t, err)
	port, err := strconv.Atoi(portStr)
	require.NoError(t, err)
	leader := cluster.LeaderFor(in, 0)

	var leaderless atomic.Bool
	leaderless.Store(true)
	cluster.ControlKey(int16(kmsg.Metadata), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		req := kreq.(*kmsg.MetadataRequest)
		if !leaderless.Load() || len(req.Topics) != 1 || req.Topics[0].Topic == nil || *req.Topics[0].Topic != in {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		resp.Version = req.Version
		br := kmsg.NewMetadataResponseBroker()
		br.NodeID, br.Host, br.Port = leader, host, int32(port)
		resp.Brokers = append(resp.Brokers, br)
		resp.ControllerID = leader
		st := kmsg.NewMetadataResponseTopic()
		st.Topic, st.TopicID = kmsg.StringPtr(in), info.TopicID
		sp := kmsg.NewMetadataResponseTopicPartition()
		sp.Partition, sp.Leader, sp.Replicas, sp.ISR = 0, -1, []int32{leader}, []int32{leader}
		st.Partitions = append(st.Partitions, sp)
		resp.Topics = append(resp.Topics, st)
		return resp, nil, true
	})

	var processed atomic.Int32
	bld := stream.NewBuilder()
	stream.Source(bld, in, stream.String(), stream.String()).Peek(func(string, string) { processed.Add(1) })
	top, err := bld.Build()
	require.NoError(t, err)
	logs := &kafkatest.LogBuffer{}
	_, stop := startApp(t, top, stream.Brokers(brokers...), stream.ApplicationID(kafkatest.UniqueName(t, "app")),
		stream.Logger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("app log:\n%s", logs.String())
		}
	})
	kafkatest.ProduceStrings(t, brokers, in, []kafkatest.KV{{Key: "k", Value: "v"}})
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "its claim has not started") }, 30*time.Second, 10*time.Millisecond)
	require.Contains(t, logs.String(), "partition_not_readable=true")
	require.Zero(t, processed.Load())
	leaderless.Store(false)
	// The runtime's refresh (every 2 s while the claim waits) and sarama's
	// next look at its cache (every 5 s): well within 20 s.
	require.Eventually(t, func() bool { return processed.Load() == 1 }, 20*time.Second, 10*time.Millisecond, "the claim never started")
	require.NoError(t, stop())
	require.Equal(t, 1, strings.Count(logs.String(), "its claim has not started"))
}
