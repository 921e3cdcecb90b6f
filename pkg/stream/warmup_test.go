package stream_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// logRecorder is a slog handler that keeps the messages of the records it
// gets, in order ("tasks assigned" with its number of tasks: "tasks
// assigned 2"), and passes warnings on to stderr.
type logRecorder struct {
	mu   *sync.Mutex
	msgs *[]string
	warn slog.Handler
}

func newLogRecorder() logRecorder {
	return logRecorder{mu: &sync.Mutex{}, msgs: new([]string),
		warn: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})}
}

func (h logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h logRecorder) Handle(ctx context.Context, r slog.Record) error {
	msg := r.Message
	if msg == "tasks assigned" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "tasks" {
				msg += " " + a.Value.String()
			}
			return true
		})
	}
	h.mu.Lock()
	*h.msgs = append(*h.msgs, msg)
	h.mu.Unlock()
	if h.warn.Enabled(ctx, r.Level) {
		return h.warn.Handle(ctx, r)
	}
	return nil
}
func (h logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logRecorder) WithGroup(string) slog.Handler      { return h }

// messages returns the messages recorded so far.
func (h logRecorder) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.msgs)
}

// count is how many recorded messages equal msg.
func (h logRecorder) count(msg string) int {
	n := 0
	for _, m := range h.messages() {
		if m == msg {
			n++
		}
	}
	return n
}

// filter returns the messages that start with prefix.
func filter(msgs []string, prefix string) []string {
	var out []string
	for _, m := range msgs {
		if strings.HasPrefix(m, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// TestIntegrationWarmupMovesCaughtUpTask: instance A runs both tasks of a
// count whose changelog holds ~1,000 records; instance B joins. Under the
// cooperative protocol (KIP-441) the task the balance gives B stays with A
// while B fills a warm-up copy, B triggers a probing rebalance once the copy
// has caught up, and only then does the task move: B restores no more than
// the acceptable lag, and A's other task is never stopped. Under the eager
// protocol (no warm-ups) the control: the task moves at once and B restores
// its whole changelog. Counts stay exact throughout.
func TestIntegrationWarmupMovesCaughtUpTask(t *testing.T) {
	const acceptableLag = 5
	for _, be := range kafkatest.Backends() {
		for _, cooperative := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/cooperative=%v", be.Name, cooperative), func(t *testing.T) {
				brokers := be.Brokers(t)
				in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
				top := countsTopology(t, brokers, in, out)
				opts := []stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(kafkatest.UniqueName(t, "app")),
					stream.AcceptableRecoveryLag(acceptableLag), stream.StateDir(t.TempDir())}
				if cooperative {
					opts = append(opts, stream.CooperativeRebalancing())
				}
				w := watchCounts(t, brokers, out)

				logA, logB := newLogRecorder(), newLogRecorder()
				_, stopA := startApp(t, top, append(opts[:len(opts):len(opts)], stream.Logger(slog.New(logA)))...)
				const n = 1000
				want := map[string]int64{}
				recs := make([]kafkatest.KV, n)
				for i := range recs {
					recs[i] = kafkatest.KV{Key: fmt.Sprintf("key-%04d", i), Value: "x"}
					want[recs[i].Key] = 1
				}
				kafkatest.ProduceStrings(t, brokers, in, recs)
				w.waitFor(t, want, 60*time.Second)
				require.Equal(t, 0, logA.count("task revoked"))

				appB, stopB := startApp(t, top, append(opts[:len(opts):len(opts)], stream.StateDir(t.TempDir()),
					stream.Logger(slog.New(logB)))...)
				if !assert.Eventually(t, func() bool {
					return logB.count("task added")+logB.count("tasks assigned 1")+logB.count("tasks assigned 2") > 0
				}, 60*time.Second, 50*time.Millisecond, "B gets a task") {
					t.Fatalf("A's log: %v\nB's log: %v", logA.messages(), logB.messages())
				}
				// Both run a task now: records of both partitions are counted.
				more := make([]kafkatest.KV, 20)
				for i := range more {
					more[i] = kafkatest.KV{Key: fmt.Sprintf("after-%02d", i), Value: "x"}
					want[more[i].Key] = 1
				}
				kafkatest.ProduceStrings(t, brokers, in, more)
				w.waitFor(t, want, 60*time.Second)

				restored := counterSum(t, appB, "stream_restored_records_total")
				copied := counterSum(t, appB, "stream_standby_records_total")
				t.Logf("B restored %.0f changelog records when its task started, its warm-up copied %.0f; B's log: %v",
					restored, copied, logB.messages())
				if !cooperative {
					require.Greater(t, restored, float64(n)/4, "without a warm-up the task's whole changelog is read")
					require.NoError(t, stopB())
					require.NoError(t, stopA())
					return
				}
				require.LessOrEqual(t, restored, float64(acceptableLag), "the task moved once B's copy had caught up")
				require.Greater(t, copied, float64(n)/4, "B's warm-up copied the task's changelog")
				msgs := logB.messages()
				probe, added := slices.Index(msgs, "probing rebalance"), slices.Index(msgs, "task added")
				require.GreaterOrEqual(t, probe, 0, "B triggered a probing rebalance")
				require.Less(t, probe, added, "the task was added after the probing rebalance")
				require.Equal(t, []string{"tasks assigned 0"}, filter(msgs, "tasks assigned"), "B's first assignment had no active task")
				require.Equal(t, 1, logA.count("task revoked"), "A stopped only the task that moved")
				require.Equal(t, []string{"tasks assigned 2"}, filter(logA.messages(), "tasks assigned"),
					"A's session went on through all rebalances")
				require.NoError(t, stopB())
				require.NoError(t, stopA())
			})
		}
	}
}
