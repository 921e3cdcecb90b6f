package window_test

import (
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
	"github.com/emostream/emostream/pkg/window"
)

// TestIntegrationWindowsCloseDuringLongRebalance: under the cooperative
// protocol a task that does not move keeps closing windows by the wall
// clock while the group rebalances, also through a long join phase. Here
// the join waits for a static member that stopped (static members do not
// leave the group) until its session times out, as it waits for a SIGKILLed
// member when a replacement with a new member id joins first: the result of
// a window due during that wait must still arrive within 1 s of end + grace.
func TestIntegrationWindowsCloseDuringLongRebalance(t *testing.T) {
	brokers := kafkatest.RealBrokers(t)
	in, out, late := countTopics(t, brokers)
	appID := kafkatest.UniqueName(t, "app")
	const session = 6 * time.Second

	start := func(extra ...stream.Opt) (stop func()) {
		stop = startCountAppWith(t, brokers, appID, in, out, late, nil, append([]stream.Opt{stream.CooperativeRebalancing(),
			stream.SessionTimeout(session), stream.HeartbeatInterval(500 * time.Millisecond)}, extra...)...)
		t.Cleanup(stop)
		return stop
	}

	admin, err := sarama.NewClusterAdmin(brokers, kafkatest.SaramaConfig())
	require.NoError(t, err)
	defer admin.Close()
	// owners waits until the group is stable with n members and returns the
	// partition of in that each instance id ("" for a dynamic member) owns.
	owners := func(n int) map[int32]string {
		var got map[int32]string
		require.Eventually(t, func() bool {
			gs, err := admin.DescribeConsumerGroups([]string{appID})
			if err != nil || len(gs) != 1 || gs[0].State != "Stable" || len(gs[0].Members) != n {
				return false
			}
			got = map[int32]string{}
			for _, m := range gs[0].Members {
				asg, err := m.GetMemberAssignment()
				if err != nil || asg == nil {
					return false
				}
				id := ""
				if m.GroupInstanceId != nil {
					id = *m.GroupInstanceId
				}
				for _, p := range asg.Topics[in] {
					got[p] = id
				}
			}
			return len(got) == 2
		}, 60*time.Second, 200*time.Millisecond)
		return got
	}

	start()                                     // A, dynamic
	stopB := start(stream.GroupInstanceID("b")) // B, static
	// Until A and B each own one partition, unchanged for 3 s (the warm-up
	// of B's copy and the probing rebalance that moves the task are over).
	var pa int32 = -1
	var since time.Time
	var last map[int32]string
	require.Eventually(t, func() bool {
		own := owners(2)
		if !maps.Equal(own, last) {
			last, since = own, time.Now()
		}
		pa = -1
		for p, id := range own {
			if id == "" {
				pa = p
			}
		}
		return pa >= 0 && len(own) == 2 && own[1-pa] == "b" && time.Since(since) >= 3*time.Second
	}, 90*time.Second, 500*time.Millisecond, "A and B each own one partition")

	// B stops: as a static member it stays in the group until its session
	// times out. A third instance joins at once: the join phase lasts until
	// then, and A keeps its partition throughout.
	stopB()
	// A window due (end + grace) 2.5–4.5 s from now, on A's partition only.
	ws := (time.Now().Add(500*time.Millisecond).UnixMilli()/2000 + 1) * 2000
	due := time.UnixMilli(ws + 2000).Add(500 * time.Millisecond)
	var recs []kafkatest.KV
	for i := range 10 {
		recs = append(recs, kafkatest.KV{Key: "k" + strconv.Itoa(i%2), Value: strconv.FormatInt(ws+int64(i*100), 10), Partition: &pa})
	}
	kafkatest.ProduceStrings(t, brokers, in, recs)
	joined := time.Now()
	start() // C, dynamic: a rebalance that waits for B's session to end
	gs, err := admin.DescribeConsumerGroups([]string{appID})
	require.NoError(t, err)
	t.Logf("C started %v after B stopped; group %s", time.Since(joined), gs[0].State)

	// The test is about a window due while the group rebalances.
	stateAtDue := make(chan string, 1)
	go func() {
		time.Sleep(time.Until(due))
		gs, err := admin.DescribeConsumerGroups([]string{appID})
		if err != nil || len(gs) != 1 {
			stateAtDue <- fmt.Sprint("describe: ", err)
			return
		}
		stateAtDue <- gs[0].State
	}()

	got := kafkatest.ConsumeN(t, brokers, out, 2, 30*time.Second)
	arrived := time.Now()
	t.Logf("results arrived %v after end + grace (the rebalance started %v before it; B's session ends about %v after it)",
		arrived.Sub(due).Round(time.Millisecond), due.Sub(joined).Round(time.Millisecond), joined.Add(session).Sub(due).Round(time.Millisecond))
	for _, m := range got {
		w, err := window.WindowedSerde(stream.String()).Deserialize([]byte(m.Key))
		require.NoError(t, err)
		t.Logf("result p%d@%d %s@%d = %q", m.Partition, m.Offset, w.Key, w.Start.UnixMilli(), m.Value)
		require.Equal(t, ws, w.Start.UnixMilli())
		n, err := stream.Int64().Deserialize([]byte(m.Value))
		require.NoError(t, err)
		require.Equal(t, int64(5), n)
	}
	require.Equal(t, "PreparingRebalance", <-stateAtDue, "the window must be due during the rebalance's join phase")
	require.WithinDuration(t, due, arrived, time.Second, "a task that does not move must close its windows on time during a rebalance")
}

// TestIntegrationHandOverClosesDueWindows: a graceful stop hands its tasks
// over only after one last wall-clock punctuation, so a window whose end +
// grace has just passed is emitted by the stopping instance, not a second
// or more later by the next owner. The regular punctuations are 30 s apart
// here, so only the hand-over's can emit the window before the stop.
func TestIntegrationHandOverClosesDueWindows(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			in, out, late := countTopics(t, brokers)
			running := make(chan struct{})
			var once sync.Once
			stop := startCountAppWith(t, brokers, kafkatest.UniqueName(t, "app"), in, out, late,
				[]window.Opt{window.CloseInterval(30 * time.Second)}, stream.CooperativeRebalancing(),
				stream.OnStateChange(func(_, now stream.State) {
					if now == stream.StateRunning {
						once.Do(func() { close(running) })
					}
				}))
			select {
			case <-running:
			case <-time.After(60 * time.Second):
				t.Fatal("the app did not reach RUNNING within 60 s")
			}

			ws := (time.Now().UnixMilli()/2000 + 1) * 2000
			due := time.UnixMilli(ws + 2000).Add(500 * time.Millisecond)
			var recs []kafkatest.KV
			for i := range 6 {
				recs = append(recs, kafkatest.KV{Key: []string{"a", "b", "c"}[i%3], Value: strconv.FormatInt(ws+int64(i*100), 10)})
			}
			kafkatest.ProduceStrings(t, brokers, in, recs)
			time.Sleep(time.Until(due.Add(300 * time.Millisecond)))
			stop()

			got := kafkatest.ConsumeN(t, brokers, out, 3, 10*time.Second)
			counts := map[string]int64{}
			for _, m := range got {
				w, err := window.WindowedSerde(stream.String()).Deserialize([]byte(m.Key))
				require.NoError(t, err)
				require.Equal(t, ws, w.Start.UnixMilli())
				n, err := stream.Int64().Deserialize([]byte(m.Value))
				require.NoError(t, err)
				counts[w.Key] = n
			}
			require.Equal(t, map[string]int64{"a": 2, "b": 2, "c": 2}, counts)
		})
	}
}
