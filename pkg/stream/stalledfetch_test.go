package stream_test

import (
	"fmt"
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
