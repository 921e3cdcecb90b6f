package stream_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// assignCounter is a slog handler that counts "tasks assigned" records.
type assignCounter struct{ n *atomic.Int32 }

func (h assignCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h assignCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "tasks assigned" {
		h.n.Add(1)
	}
	return nil
}
func (h assignCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h assignCounter) WithGroup(string) slog.Handler      { return h }

// TestStaticMemberRestartWithoutRebalance: a static member (GroupInstanceID)
// that stops and comes back under the same id within the session timeout
// gets its tasks back without a rebalance — the other member's tasks are
// never revoked — and a static member's stop sends no LeaveGroup.
func TestStaticMemberRestartWithoutRebalance(t *testing.T) {
	brokers := kafkatest.RealBrokers(t)
	in, out := kafkatest.UniqueName(t, "static-in"), kafkatest.UniqueName(t, "static-out")
	kafkatest.CreateTopic(t, brokers, in, 2)
	kafkatest.CreateTopic(t, brokers, out, 2)
	appID := kafkatest.UniqueName(t, "static")
	newApp := func(counter *atomic.Int32, opts ...stream.Opt) *stream.App {
		b := stream.NewBuilder()
		stream.Source(b, in, stream.String(), stream.String()).To(out, stream.String(), stream.String())
		top, err := b.Build()
		require.NoError(t, err)
		app, err := stream.NewApp(top, append([]stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID),
			stream.Logger(slog.New(assignCounter{counter})), stream.SessionTimeout(10 * time.Second)}, opts...)...)
		require.NoError(t, err)
		return app
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	run := func(app *stream.App) context.CancelFunc {
		ctx, cancel := context.WithCancel(context.Background())
		wg.Go(func() { _ = app.Run(ctx) })
		return cancel
	}
	var aCount, bCount atomic.Int32
	stopA := run(newApp(&aCount, stream.GroupInstanceID("static-a")))
	stopB := run(newApp(&bCount))
	defer stopB()

	admin, err := sarama.NewClusterAdmin(brokers, kafkatest.SaramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	members := func() (string, int) {
		gs, err := admin.DescribeConsumerGroups([]string{appID})
		if err != nil || len(gs) != 1 {
			return "", 0
		}
		return gs[0].State, len(gs[0].Members)
	}
	require.Eventually(t, func() bool { s, n := members(); return s == "Stable" && n == 2 }, 60*time.Second, 200*time.Millisecond)
	// Both have their final assignment once the group is stable.
	time.Sleep(time.Second)
	before := bCount.Load()

	stopA()
	time.Sleep(2 * time.Second)
	s, n := members()
	require.Equal(t, 2, n, "a static member that stopped must stay in the group (no LeaveGroup), state %s", s)
	aCount.Store(0)
	stopA2 := run(newApp(&aCount, stream.GroupInstanceID("static-a")))
	defer stopA2()
	require.Eventually(t, func() bool { return aCount.Load() > 0 }, 30*time.Second, 100*time.Millisecond, "the restarted static member got no tasks")
	time.Sleep(2 * time.Second)
	require.Equal(t, before, bCount.Load(), "the other member's tasks were reassigned: a rebalance happened")
	s, n = members()
	require.True(t, s == "Stable" && n == 2, "group %s with %d members", s, n)
}
