package stream_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// counterSum is the sum of a counter family in the app's metrics.
func counterSum(t *testing.T, app *stream.App, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(app.Collector()))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestIntegrationStandbyFailoverRestoresTail: two instances share the two
// tasks of a count. When one leaves, the other takes its task over. Without
// standby replicas it restores the task's store from the whole changelog;
// with StandbyReplicas(1) it kept a warm copy and restores only the tail it
// had not applied yet (here: nothing or next to nothing).
func TestIntegrationStandbyFailoverRestoresTail(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		for _, standbys := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s/standbys=%d", be.Name, standbys), func(t *testing.T) {
				brokers := be.Brokers(t)
				in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
				top := countsTopology(t, brokers, in, out)
				opts := []stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(kafkatest.UniqueName(t, "app")),
					stream.StandbyReplicas(standbys), stream.StateDir(t.TempDir())}
				w := watchCounts(t, brokers, out)

				_, stopA := startApp(t, top, opts...)
				appB, stopB := startApp(t, top, append(opts[:len(opts):len(opts)], stream.StateDir(t.TempDir()))...)
				// The group settles: one task each (records of both
				// partitions are counted).
				warm := []kafkatest.KV{{Key: "warm-a", Value: "x"}, {Key: "warm-b", Value: "x"}, {Key: "warm-c", Value: "x"}, {Key: "warm-d", Value: "x"}}
				kafkatest.ProduceStrings(t, brokers, in, warm)
				want := map[string]int64{"warm-a": 1, "warm-b": 1, "warm-c": 1, "warm-d": 1}
				w.waitFor(t, want, 60*time.Second)
				time.Sleep(2 * time.Second)

				const n = 1000
				recs := make([]kafkatest.KV, n)
				for i := range recs {
					recs[i] = kafkatest.KV{Key: fmt.Sprintf("key-%04d", i), Value: "x"}
					want[recs[i].Key] = 1
				}
				kafkatest.ProduceStrings(t, brokers, in, recs)
				w.waitFor(t, want, 60*time.Second)
				if standbys > 0 {
					// B's copy of A's task has applied A's changelog.
					var last float64
					require.Eventually(t, func() bool {
						now := counterSum(t, appB, "stream_standby_records_total")
						settled := now > 0 && now == last
						last = now
						return settled
					}, 30*time.Second, 500*time.Millisecond, "standby copy follows the changelog")
				}
				before := counterSum(t, appB, "stream_restored_records_total")

				// A leaves; B takes A's task over.
				require.NoError(t, stopA())
				more := []kafkatest.KV{}
				for i := range 50 {
					more = append(more, kafkatest.KV{Key: fmt.Sprintf("after-%02d", i), Value: "x"})
					want[more[i].Key] = 1
				}
				kafkatest.ProduceStrings(t, brokers, in, more)
				w.waitFor(t, want, 60*time.Second)
				restored := counterSum(t, appB, "stream_restored_records_total") - before
				t.Logf("standbys=%d: the failover restored %.0f changelog records", standbys, restored)
				if standbys == 0 {
					require.Greater(t, restored, float64(n)/4, "without a standby, the whole changelog of A's task is read")
				} else {
					require.LessOrEqual(t, restored, float64(10), "with a standby, only the tail")
				}
				require.NoError(t, stopB())
			})
		}
	}
}

// countsTopology creates in and out with 2 partitions each and returns a
// topology counting in's keys into store "counts", written to out.
func countsTopology(t *testing.T, brokers []string, in, out string) *stream.Topology {
	t.Helper()
	kafkatest.CreateTopic(t, brokers, in, 2)
	kafkatest.CreateTopic(t, brokers, out, 2)
	b := stream.NewBuilder()
	stream.Count(stream.GroupByKey(stream.Source(b, in, stream.String(), stream.String())),
		stream.Materialized[string, int64]{StoreName: "counts"}).ToStream().To(out, stream.String(), stream.Int64())
	top, err := b.Build()
	require.NoError(t, err)
	return top
}
