package stream_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// stateLog records an App's state changes.
type stateLog struct {
	mu      sync.Mutex
	changes []string
}

func (l *stateLog) add(old, new stream.State) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, fmt.Sprintf("%v->%v", old, new))
}

func (l *stateLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.changes...)
}

// TestAppState: CREATED before Run, REBALANCING while it joins and restores,
// RUNNING once every assigned task processes, PENDING_SHUTDOWN and
// NOT_RUNNING after the cancellation, each change told to the listener in
// order. With cooperative rebalancing an instance keeps RUNNING while a
// second one joins and takes tasks from it; the newcomer is RUNNING only
// once its tasks are created.
func TestAppState(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
			kafkatest.CreateTopic(t, brokers, in, 4)
			kafkatest.CreateTopic(t, brokers, out, 4)
			appID := kafkatest.UniqueName(t, "app")
			recs, _ := words(200, 0)
			kafkatest.ProduceStrings(t, brokers, in, recs)

			newApp := func(l *stateLog) *stream.App {
				app, err := stream.NewApp(wordCountTopology(in, out), stream.Brokers(brokers...),
					stream.ApplicationID(appID), stream.StateDir(t.TempDir()), stream.CooperativeRebalancing(),
					stream.OnStateChange(l.add), stream.Logger(slog.New(slog.DiscardHandler)))
				require.NoError(t, err)
				return app
			}
			var la, lb stateLog
			a := newApp(&la)
			require.Equal(t, stream.StateCreated, a.State())
			ctxA, cancelA := context.WithCancel(context.Background())
			defer cancelA()
			errA := make(chan error, 1)
			go func() { errA <- a.Run(ctxA) }()
			require.Eventually(t, func() bool { return a.State() == stream.StateRunning }, 60*time.Second, 10*time.Millisecond)
			require.Equal(t, []string{"CREATED->REBALANCING", "REBALANCING->RUNNING"}, la.list())

			b := newApp(&lb)
			ctxB, cancelB := context.WithCancel(context.Background())
			defer cancelB()
			errB := make(chan error, 1)
			go func() { errB <- b.Run(ctxB) }()
			require.Eventually(t, func() bool { return b.State() == stream.StateRunning }, 60*time.Second, 10*time.Millisecond)
			require.Equal(t, []string{"CREATED->REBALANCING", "REBALANCING->RUNNING"}, lb.list())
			// The first instance gave tasks away without a stop: it never
			// left RUNNING (its assignment only shrank).
			require.Equal(t, stream.StateRunning, a.State())
			require.Equal(t, []string{"CREATED->REBALANCING", "REBALANCING->RUNNING"}, la.list())

			cancelB()
			require.NoError(t, <-errB)
			require.Equal(t, stream.StateNotRunning, b.State())
			require.Equal(t, []string{"CREATED->REBALANCING", "REBALANCING->RUNNING", "RUNNING->PENDING_SHUTDOWN", "PENDING_SHUTDOWN->NOT_RUNNING"}, lb.list())
			// The survivor takes the leaver's tasks back: REBALANCING while
			// it creates them, then RUNNING again.
			require.Eventually(t, func() bool {
				l := la.list()
				return len(l) >= 4 && l[len(l)-1] == "REBALANCING->RUNNING"
			}, 60*time.Second, 10*time.Millisecond, "%v", la.list())
			require.Equal(t, "RUNNING->REBALANCING", la.list()[2])

			cancelA()
			require.NoError(t, <-errA)
			require.Equal(t, stream.StateNotRunning, a.State())
			l := la.list()
			require.Equal(t, []string{"RUNNING->PENDING_SHUTDOWN", "PENDING_SHUTDOWN->NOT_RUNNING"}, l[len(l)-2:])
		})
	}
}
