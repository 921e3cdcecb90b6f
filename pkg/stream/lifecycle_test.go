package stream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/embedded"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// runFor starts app.Run, calls trigger (which decides when to stop), cancels
// and returns how long Run took to return after the cancellation.
func runAndCancel(t *testing.T, app *stream.App, trigger func(), limit time.Duration) (time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- app.Run(ctx) }()
	trigger()
	at := time.Now()
	cancel()
	select {
	case err := <-errc:
		return time.Since(at), err
	case <-time.After(limit + 30*time.Second):
		t.Fatalf("Run did not return within %v of the cancellation", limit+30*time.Second)
		return 0, nil
	}
}

// A broker address that accepts connections and never answers: the client
// cannot even fetch metadata. Run must still return within 1 s.
func TestRunCancelWhileConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	app, err := stream.NewApp(wordCountTopology("in", "out"), stream.Brokers(ln.Addr().String()),
		stream.ApplicationID("silent"), stream.Logger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	took, err := runAndCancel(t, app, func() { time.Sleep(500 * time.Millisecond) }, time.Second)
	t.Logf("Run returned %v after cancellation while connecting to a silent broker", took)
	require.NoError(t, err)
	require.Less(t, took, time.Second)
}

// Cancel at many moments of the start-up against an embedded broker:
// connecting, creating topics, joining the group, setting up tasks.
func TestRunCancelDuringStartup(t *testing.T) {
	brokers := kafkatest.EmbeddedBrokers(t)
	in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
	kafkatest.CreateTopic(t, brokers, in, 4)
	kafkatest.CreateTopic(t, brokers, out, 4)
	recs, _ := words(200, 0)
	kafkatest.ProduceStrings(t, brokers, in, recs)
	var worst time.Duration
	for _, after := range []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1500 * time.Millisecond} {
		app, err := stream.NewApp(wordCountTopology(in, out), stream.Brokers(brokers...),
			stream.ApplicationID(kafkatest.UniqueName(t, "app")), stream.StateDir(t.TempDir()),
			stream.Logger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		took, err := runAndCancel(t, app, func() { time.Sleep(after) }, time.Second)
		t.Logf("cancel %v after start: Run returned %v later (err %v)", after, took, err)
		require.NoError(t, err)
		require.Less(t, took, time.Second, "cancel %v after start", after)
		worst = max(worst, took)
	}
	t.Logf("worst: %v", worst)
}

// Cancel while a store restores a large changelog: Run returns within 1 s
// and does not finish the restore.
func TestRunCancelDuringRestore(t *testing.T) {
	brokers := kafkatest.EmbeddedBrokers(t)
	in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
	kafkatest.CreateTopic(t, brokers, in, 1)
	kafkatest.CreateTopic(t, brokers, out, 1)
	appID := kafkatest.UniqueName(t, "app")
	top := wordCountTopology(in, out)
	// The count store's changelog, filled before the application starts.
	changelog := appID + "-counts-changelog"
	kafkatest.CreateTopic(t, brokers, changelog, 1)
	cfg := kafkatest.SaramaConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Flush.Messages = 5000
	cfg.Producer.Flush.Frequency = 10 * time.Millisecond
	p, err := sarama.NewAsyncProducer(brokers, cfg)
	require.NoError(t, err)
	const n = 400_000
	go func() {
		for i := 0; i < n; i++ {
			p.Input() <- &sarama.ProducerMessage{Topic: changelog, Key: sarama.StringEncoder(fmt.Sprintf("key-%d", i)),
				Value: sarama.ByteEncoder(make([]byte, 8))}
		}
	}()
	for i := 0; i < n; i++ {
		select {
		case <-p.Successes():
		case perr := <-p.Errors():
			t.Fatal(perr)
		}
	}
	require.NoError(t, p.Close())

	var logs kafkatest.LogBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	app, err := stream.NewApp(top, stream.Brokers(brokers...), stream.ApplicationID(appID),
		stream.StateDir(t.TempDir()), stream.Logger(logger))
	require.NoError(t, err)
	took, err := runAndCancel(t, app, func() {
		require.Eventually(t, func() bool { return strings.Contains(logs.String(), "restoring store") }, 60*time.Second, 5*time.Millisecond)
		time.Sleep(300 * time.Millisecond)
	}, time.Second)
	t.Logf("cancel during the restore of %d changelog records: Run returned %v later (err %v)", n, took, err)
	require.NoError(t, err)
	require.Less(t, took, time.Second)
	require.NotContains(t, logs.String(), "store restored", "the restore finished before the cancellation: make the changelog larger")
}

// Every broker gone while the application processes: the shutdown ends
// within 10 s (the default ShutdownTimeout is 8 s) and commits nothing.
func TestRunShutdownWithBrokerGone(t *testing.T) {
	b, err := embedded.Start()
	require.NoError(t, err)
	closed := false
	defer func() {
		if !closed {
			_ = b.Close()
		}
	}()
	brokers := b.Addrs()
	in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
	kafkatest.CreateTopic(t, brokers, in, 2)
	kafkatest.CreateTopic(t, brokers, out, 2)
	recs, want := words(500, 0)
	kafkatest.ProduceStrings(t, brokers, in, recs)
	w := watchCounts(t, brokers, out)
	app, err := stream.NewApp(wordCountTopology(in, out), stream.Brokers(brokers...),
		stream.ApplicationID(kafkatest.UniqueName(t, "app")), stream.StateDir(t.TempDir()),
		stream.CommitInterval(time.Hour), stream.Logger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	took, err := runAndCancel(t, app, func() {
		w.waitFor(t, want, 60*time.Second)
		w.stop()
		require.NoError(t, b.Close())
		closed = true
		time.Sleep(200 * time.Millisecond)
	}, 10*time.Second)
	t.Logf("shutdown with the broker gone: Run returned %v after the cancellation (err %v)", took, err)
	require.Less(t, took, 10*time.Second)
}

// failOnce fails the first record it sees in the first n runtimes.
type failing struct {
	fails *atomic.Int32
	n     int32
}

func (p *failing) Init(stream.ProcessorContext[string, string]) error { return nil }
func (p *failing) Process(ctx stream.ProcessorContext[string, string], r stream.Record[string, string]) error {
	if p.fails.Add(1) <= p.n {
		return errors.New("injected failure")
	}
	ctx.Forward(r)
	return nil
}
func (p *failing) Close() error { return nil }

func failingTopology(in, out string, fails *atomic.Int32, n int32) *stream.Topology {
	b := stream.NewBuilder()
	src := stream.Source(b, in, stream.String(), stream.String())
	mid := stream.Process(src, "failing", func() stream.Processor[string, string, string, string] {
		return &failing{fails: fails, n: n}
	})
	counts := stream.Count(
		stream.GroupBy(mid, func(_, w string) string { return w }, stream.Grouped[string, string]{Name: "by-word", KeySerde: stream.String(), ValueSerde: stream.String()}),
		stream.Materialized[string, int64]{StoreName: "counts"},
	)
	counts.ToStream().To(out, stream.String(), stream.Int64())
	top, err := b.Build()
	if err != nil {
		panic(err)
	}
	return top
}

// A runtime failure restarts the runtime inside Run: the counts come out
// complete and never counted twice, and the restart is counted.
func TestRunRestartsAfterFailure(t *testing.T) {
	brokers := kafkatest.EmbeddedBrokers(t)
	in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
	// One input partition: each runtime fails at its first record.
	kafkatest.CreateTopic(t, brokers, in, 1)
	kafkatest.CreateTopic(t, brokers, out, 2)
	recs, want := words(300, 0)
	kafkatest.ProduceStrings(t, brokers, in, recs)
	w := watchCounts(t, brokers, out)
	var fails atomic.Int32
	app, stop := startApp(t, failingTopology(in, out, &fails, 2), stream.Brokers(brokers...),
		stream.ApplicationID(kafkatest.UniqueName(t, "app")), stream.RestartOnFailure(3, 50*time.Millisecond))
	w.waitFor(t, want, 60*time.Second)
	require.NoError(t, stop())
	require.GreaterOrEqual(t, fails.Load(), int32(3))
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(app.Collector()))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	restarts := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "stream_restarts_total" {
			restarts = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	require.Equal(t, 2.0, restarts)
}

// Quick failures in a row end Run with the last error; RestartOnFailure(0)
// returns the first one.
func TestRunGivesUpAfterQuickFailures(t *testing.T) {
	brokers := kafkatest.EmbeddedBrokers(t)
	in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
	kafkatest.CreateTopic(t, brokers, in, 1)
	kafkatest.CreateTopic(t, brokers, out, 1)
	recs, _ := words(20, 0)
	kafkatest.ProduceStrings(t, brokers, in, recs)
	for _, tc := range []struct {
		restarts int
		want     string
	}{{0, "injected failure"}, {2, "failed 3 times in a row"}} {
		var fails atomic.Int32
		app, err := stream.NewApp(failingTopology(in, out, &fails, 1000), stream.Brokers(brokers...),
			stream.ApplicationID(kafkatest.UniqueName(t, "app")), stream.RestartOnFailure(tc.restarts, 20*time.Millisecond),
			stream.Logger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err = app.Run(ctx)
		cancel()
		require.ErrorContains(t, err, tc.want)
		require.ErrorContains(t, err, "injected failure")
		require.Equal(t, int32(tc.restarts+1), fails.Load())
	}
}
