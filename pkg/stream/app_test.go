package stream_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// The crash test re-runs this test binary as a child process that runs a word
// count until it is killed with SIGKILL.
const childEnv = "STREAM_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "wordcount" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

func runChild() int {
	brokers := strings.Split(os.Getenv("CHILD_BROKERS"), ",")
	top := wordCountTopology(os.Getenv("CHILD_IN"), os.Getenv("CHILD_OUT"))
	// A long commit interval leaves much processed-but-uncommitted work at the
	// moment of the kill, so the restart must replay it without double counting.
	opts := []stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(os.Getenv("CHILD_APP")),
		stream.CommitInterval(time.Hour), stream.ReplicationFactor(1)}
	if os.Getenv("CHILD_EOS") == "1" {
		// Transactions make output visible per commit, so commit often.
		opts = append(opts, stream.ExactlyOnce(), stream.CommitInterval(300*time.Millisecond))
	}
	app, err := stream.NewApp(top, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := app.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// wordCountTopology counts words (record values) through a repartition topic.
func wordCountTopology(in, out string) *stream.Topology {
	b := stream.NewBuilder()
	src := stream.Source(b, in, stream.String(), stream.String())
	counts := stream.Count(
		stream.GroupBy(src, func(_, w string) string { return w }, stream.Grouped[string, string]{Name: "by-word", KeySerde: stream.String(), ValueSerde: stream.String()}),
		stream.Materialized[string, int64]{StoreName: "counts"},
	)
	counts.ToStream().To(out, stream.String(), stream.Int64())
	top, err := b.Build()
	if err != nil {
		panic(err)
	}
	return top
}

// words returns n records over users and 7 words, and the expected count per word.
func words(n, from int) ([]kafkatest.KV, map[string]int64) {
	recs := make([]kafkatest.KV, 0, n)
	want := map[string]int64{}
	for i := from; i < from+n; i++ {
		w := fmt.Sprintf("w%d", i%7)
		recs = append(recs, kafkatest.KV{Key: fmt.Sprintf("user%d", i%13), Value: w})
		want[w]++
	}
	return recs, want
}

func add(a, b map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range a {
		out[k] += v
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}

// countWatcher reads a count topic from the start and keeps the latest and the
// largest value seen per key: a double count shows as a value above the
// expected total, even if a later record would hide it.
type countWatcher struct {
	mu      sync.Mutex
	latest  map[string]int64
	max     map[string]int64
	records int
	stop    func()
	done    chan struct{}
}

func watchCounts(t *testing.T, brokers []string, topic string) *countWatcher {
	t.Helper()
	cfg := kafkatest.SaramaConfig()
	consumer, err := sarama.NewConsumer(brokers, cfg)
	require.NoError(t, err)
	parts, err := consumer.Partitions(topic)
	require.NoError(t, err)
	w := &countWatcher{latest: map[string]int64{}, max: map[string]int64{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range parts {
		// A just-created topic's leader may not be in this client's metadata yet.
		var pc sarama.PartitionConsumer
		require.Eventually(t, func() bool {
			pc, err = consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
			return err == nil
		}, 30*time.Second, 100*time.Millisecond, "consume %s/%d: %v", topic, p, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close()
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-pc.Messages():
					v, err := stream.Int64().Deserialize(m.Value)
					if err != nil {
						continue
					}
					w.mu.Lock()
					k := string(m.Key)
					w.latest[k] = v
					w.max[k] = max(w.max[k], v)
					w.records++
					w.mu.Unlock()
				}
			}
		}()
	}
	w.stop = func() { cancel(); wg.Wait(); consumer.Close() }
	t.Cleanup(w.stop)
	return w
}

// waitFor waits until the latest counts equal want, and fails if any count
// ever exceeded its expected value.
func (w *countWatcher) waitFor(t *testing.T, want map[string]int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		for k, v := range w.max {
			if v > want[k] {
				w.mu.Unlock()
				t.Fatalf("double count: %s reached %d, expected at most %d", k, v, want[k])
			}
		}
		equal := len(w.latest) == len(want)
		for k, v := range want {
			if w.latest[k] != v {
				equal = false
			}
		}
		got := fmt.Sprint(w.latest)
		w.mu.Unlock()
		if equal {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts did not converge in %v:\n got  %s\n want %v", timeout, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *countWatcher) total() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, v := range w.latest {
		n += v
	}
	return n
}

// startApp runs an App in a goroutine; the returned stop cancels it and
// returns Run's error. The app logs at debug level into kafkatest's
// FailureLogger: its log is printed only if the test fails.
func startApp(t *testing.T, top *stream.Topology, opts ...stream.Opt) (app *stream.App, stop func() error) {
	t.Helper()
	app, err := stream.NewApp(top, append([]stream.Opt{stream.CommitInterval(200 * time.Millisecond),
		stream.Logger(kafkatest.FailureLogger(t))}, opts...)...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- app.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(60 * time.Second):
				runErr = errors.New("app did not stop within 60s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return app, stop
}

func TestIntegrationStatelessPipeline(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
			kafkatest.CreateTopic(t, brokers, in, 4)
			kafkatest.CreateTopic(t, brokers, out, 4)
			b := stream.NewBuilder()
			src := stream.Source(b, in, stream.String(), stream.String())
			upper := stream.MapValues(src.Filter(func(_, v string) bool { return !strings.HasPrefix(v, "drop") }),
				func(_, v string) string { return strings.ToUpper(v) })
			upper.To(out, stream.String(), stream.String())
			top, err := b.Build()
			require.NoError(t, err)

			var recs []kafkatest.KV
			want := map[string]bool{}
			for i := range 400 {
				v := fmt.Sprintf("v%d", i)
				if i%4 == 0 {
					v = "drop" + v
				} else {
					want[strings.ToUpper(v)] = true
				}
				recs = append(recs, kafkatest.KV{Key: fmt.Sprintf("k%d", i%10), Value: v})
			}
			kafkatest.ProduceStrings(t, brokers, in, recs)
			_, stop := startApp(t, top, stream.Brokers(brokers...), stream.ApplicationID(kafkatest.UniqueName(t, "app")))
			got := kafkatest.ConsumeN(t, brokers, out, len(want), 60*time.Second)
			require.NoError(t, stop())
			seen := map[string]bool{}
			for _, m := range got {
				require.True(t, want[m.Value], "unexpected %q", m.Value)
				seen[m.Value] = true
			}
			require.Len(t, seen, len(want))
		})
	}
}

func TestIntegrationGroupByCountRestartAndScaleOut(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
			kafkatest.CreateTopic(t, brokers, in, 4)
			kafkatest.CreateTopic(t, brokers, out, 4)
			appID := kafkatest.UniqueName(t, "app")
			top := wordCountTopology(in, out)
			w := watchCounts(t, brokers, out)
			opts := []stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID)}

			// 1. A repartitioning group-by + count, exact.
			recs1, want1 := words(700, 0)
			kafkatest.ProduceStrings(t, brokers, in, recs1)
			app, stop := startApp(t, top, opts...)
			w.waitFor(t, want1, 60*time.Second)

			// Interactive queries: the local store while running, and a goka
			// view of the whole store from outside the group.
			q := stream.QueryStore[string, int64](app, "counts", stream.String())
			view, err := stream.NewView("counts", stream.String(), stream.Int64(), stream.Brokers(brokers...), stream.ApplicationID(appID))
			require.NoError(t, err)
			vctx, vcancel := context.WithCancel(context.Background())
			verr := make(chan error, 1)
			go func() { verr <- view.Run(vctx) }()
			select {
			case <-view.WaitRunning():
			case <-time.After(30 * time.Second):
				t.Fatal("view did not recover")
			}
			for word, n := range want1 {
				got, found, err := q.Get(word)
				require.NoError(t, err)
				require.True(t, found, word)
				require.Equal(t, n, got, word)
				require.Eventually(t, func() bool { v, ok, err := view.Get(word); return err == nil && ok && v == n }, 10*time.Second, 20*time.Millisecond, word)
			}
			all, err := view.All()
			require.NoError(t, err)
			require.Len(t, all, len(want1))
			vcancel()
			require.NoError(t, <-verr)
			require.NoError(t, stop())

			// 2. A restart restores the store from the changelog and goes on exactly.
			recs2, want2 := words(700, 700)
			kafkatest.ProduceStrings(t, brokers, in, recs2)
			_, stop = startApp(t, top, opts...)
			want12 := add(want1, want2)
			w.waitFor(t, want12, 60*time.Second)

			// 3. Two instances share the 4 partitions; one stops half-way.
			_, stop2 := startApp(t, top, opts...)
			recs3, want3 := words(1400, 1400)
			kafkatest.ProduceStrings(t, brokers, in, recs3[:700])
			time.Sleep(2 * time.Second)
			require.NoError(t, stop())
			kafkatest.ProduceStrings(t, brokers, in, recs3[700:])
			w.waitFor(t, add(want12, want3), 90*time.Second)
			require.NoError(t, stop2())
		})
	}
}

func TestIntegrationCrashRestartNoDoubleCount(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		for _, eos := range []bool{false, true} {
			name := be.Name + "/at-least-once"
			if eos {
				name = be.Name + "/exactly-once"
			}
			t.Run(name, func(t *testing.T) { crashRestart(t, be, eos) })
		}
	}
}

// crashRestart SIGKILLs a word-count child process mid-stream and restarts
// it. At-least-once: counts stay exact although input is replayed. Exactly
// once: in addition, a read_committed reader sees every count update once.
func crashRestart(t *testing.T, be kafkatest.Backend, eos bool) {
	{
		{
			brokers := be.Brokers(t)
			in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
			kafkatest.CreateTopic(t, brokers, in, 4)
			kafkatest.CreateTopic(t, brokers, out, 4)
			appID := kafkatest.UniqueName(t, "app")
			w := watchCounts(t, brokers, out)
			child := func() *exec.Cmd {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), childEnv+"=wordcount", "CHILD_BROKERS="+strings.Join(brokers, ","),
					"CHILD_IN="+in, "CHILD_OUT="+out, "CHILD_APP="+appID)
				if eos {
					cmd.Env = append(cmd.Env, "CHILD_EOS=1")
				}
				cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
				require.NoError(t, cmd.Start())
				return cmd
			}
			recs, want := words(3000, 0)
			kafkatest.ProduceStrings(t, brokers, in, recs[:2000])
			cmd := child()
			// Kill it once it has produced output for part of the input: its
			// offsets are not committed (CommitInterval is an hour) but its
			// changelog and output writes are in Kafka.
			deadline := time.Now().Add(60 * time.Second)
			for w.total() < 1000 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			require.GreaterOrEqual(t, w.total(), int64(1000), "child produced no output")
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			_ = cmd.Wait()
			kafkatest.ProduceStrings(t, brokers, in, recs[2000:])

			cmd = child()
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			w.waitFor(t, want, 90*time.Second)
			w.mu.Lock()
			records := w.records
			w.mu.Unlock()
			if eos {
				// Aborted work is invisible: one count update per input record.
				time.Sleep(time.Second)
				w.mu.Lock()
				records = w.records
				w.mu.Unlock()
				require.Equal(t, len(recs), records, "exactly-once output must not repeat an update")
				return
			}
			// The restart replayed input the first child had already counted:
			// more count updates than input records prove the replay happened.
			require.Greater(t, records, len(recs), "no redelivery happened; the test did not exercise the dedup")
		}
	}
}

func TestIntegrationPersistentStoreRestart(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
			kafkatest.CreateTopic(t, brokers, in, 2)
			kafkatest.CreateTopic(t, brokers, out, 2)
			b := stream.NewBuilder()
			src := stream.Source(b, in, stream.String(), stream.String())
			stream.Count(stream.GroupByKey(stream.SelectKey(src, func(_, w string) string { return w }),
				stream.Grouped[string, string]{KeySerde: stream.String(), ValueSerde: stream.String()}),
				stream.Materialized[string, int64]{StoreName: "counts", Options: []stream.StoreOpt{stream.Persistent()}}).
				ToStream().To(out, stream.String(), stream.Int64())
			top, err := b.Build()
			require.NoError(t, err)
			dir := t.TempDir()
			appID := kafkatest.UniqueName(t, "app")
			opts := []stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID), stream.StateDir(dir)}
			w := watchCounts(t, brokers, out)

			recs1, want1 := words(300, 0)
			kafkatest.ProduceStrings(t, brokers, in, recs1)
			_, stop := startApp(t, top, opts...)
			w.waitFor(t, want1, 60*time.Second)
			require.NoError(t, stop())
			// A clean stop leaves pebble's marker and a changelog checkpoint per store partition.
			cps, err := filepath.Glob(filepath.Join(dir, appID, "counts-*.checkpoint"))
			require.NoError(t, err)
			require.Len(t, cps, 2)

			recs2, want2 := words(300, 300)
			kafkatest.ProduceStrings(t, brokers, in, recs2)
			_, stop = startApp(t, top, opts...)
			w.waitFor(t, add(want1, want2), 60*time.Second)
			require.NoError(t, stop())

			// Another application (another id) with the same StateDir and
			// input has folders of its own: it counts from zero instead of
			// starting from the first one's store.
			out2 := kafkatest.UniqueName(t, "out2")
			kafkatest.CreateTopic(t, brokers, out2, 2)
			b2 := stream.NewBuilder()
			src2 := stream.Source(b2, in, stream.String(), stream.String())
			stream.Count(stream.GroupByKey(stream.SelectKey(src2, func(_, w string) string { return w }),
				stream.Grouped[string, string]{KeySerde: stream.String(), ValueSerde: stream.String()}),
				stream.Materialized[string, int64]{StoreName: "counts", Options: []stream.StoreOpt{stream.Persistent()}}).
				ToStream().To(out2, stream.String(), stream.Int64())
			top2, err := b2.Build()
			require.NoError(t, err)
			other := kafkatest.UniqueName(t, "other")
			w2 := watchCounts(t, brokers, out2)
			_, stop = startApp(t, top2, stream.Brokers(brokers...), stream.ApplicationID(other), stream.StateDir(dir))
			w2.waitFor(t, add(want1, want2), 60*time.Second)
			require.NoError(t, stop())
			for _, id := range []string{appID, other} {
				cps, err := filepath.Glob(filepath.Join(dir, id, "counts-*.checkpoint"))
				require.NoError(t, err)
				require.Len(t, cps, 2, "store folders of %s", id)
			}
		})
	}
}

func TestIntegrationMetrics(t *testing.T) {
	brokers := kafkatest.EmbeddedBrokers(t)
	in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
	kafkatest.CreateTopic(t, brokers, in, 1)
	kafkatest.CreateTopic(t, brokers, out, 1)
	top := wordCountTopology(in, out)
	recs, want := words(50, 0)
	kafkatest.ProduceStrings(t, brokers, in, recs)
	w := watchCounts(t, brokers, out)
	app, stop := startApp(t, top, stream.Brokers(brokers...), stream.ApplicationID(kafkatest.UniqueName(t, "app")))
	w.waitFor(t, want, 60*time.Second)
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(app.Collector()))
	families, err := reg.Gather()
	require.NoError(t, err)
	values := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				values[f.GetName()] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				values[f.GetName()] += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				values[f.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	// 50 input records plus 50 repartitioned ones.
	require.Equal(t, float64(100), values["stream_records_in_total"])
	// Processing time is observed once per batch of buffered records.
	require.GreaterOrEqual(t, values["stream_process_latency_seconds"], float64(2))
	require.LessOrEqual(t, values["stream_process_latency_seconds"], float64(100))
	require.Equal(t, float64(len(want)), values["stream_store_entries"])
	require.Contains(t, values, "stream_consumer_lag_records")
	require.NoError(t, stop())
}
