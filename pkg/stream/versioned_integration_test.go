package stream_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestIntegrationVersionedTableJoin runs, on the embedded broker and on the
// real Kafka, a versioned table read from a 2-partition compacted topic
// (with an out-of-order update and a tombstone) and a co-partitioned
// order stream left-joined with it as of each order's timestamp, through a
// grace buffer. It checks the joined records, then that a new instance
// restores the table's history and the buffer (its records and its stream
// time) from their changelogs: a late order joins at once with the value
// of its time, and an order buffered before the restart is joined after.
// The table's store is on disk (Persistent), in a state directory of each
// instance's own.
func TestIntegrationVersionedTableJoin(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			prices, orders, out := kafkatest.UniqueName(t, "prices"), kafkatest.UniqueName(t, "orders"), kafkatest.UniqueName(t, "out")
			appID := kafkatest.UniqueName(t, "app")
			kafkatest.CreateTopicWithConfig(t, brokers, prices, 2, map[string]string{"cleanup.policy": "compact"})
			kafkatest.CreateTopic(t, brokers, orders, 2)
			kafkatest.CreateTopic(t, brokers, out, 1)
			base := time.Now().Add(-time.Hour).Truncate(time.Second)
			at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
			kafkatest.ProduceStrings(t, brokers, prices, []kafkatest.KV{
				{Key: "a", Value: "1", Timestamp: at(1000)}, {Key: "a", Value: "3", Timestamp: at(3000)},
				{Key: "a", Value: "2", Timestamp: at(2000)}, // out of order: into the history
				{Key: "b", Value: "9", Timestamp: at(1500)}, {Key: "b", Tombstone: true, Timestamp: at(2500)},
			})
			top := func() *stream.Topology {
				b := stream.NewBuilder()
				tbl := stream.VersionedTableSource(b, prices, stream.String(), stream.String(), time.Hour,
					stream.Materialized[string, string]{StoreName: "prices", Options: []stream.StoreOpt{stream.Persistent()}})
				stream.LeftJoinTable(stream.Source(b, orders, stream.String(), stream.String()), tbl, func(o string, p *string) string {
					if p == nil {
						return o + "@none"
					}
					return o + "@" + *p
				}, stream.Joined[string, string]{Name: "orders-prices", Grace: 500 * time.Millisecond}).To(out, stream.String(), stream.String())
				top, err := b.Build()
				require.NoError(t, err)
				return top
			}
			opts := []stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID)}
			loaded := func(app *stream.App) bool {
				q := stream.QueryStore[string, string](app, "prices", stream.String())
				a, okA, errA := q.Get("a")
				_, okB, errB := q.Get("b")
				return errA == nil && errB == nil && okA && a == "3" && !okB
			}
			buffered := func(app *stream.App) int {
				it, err := stream.QueryStore[[]byte, []byte](app, "orders-prices-Buffer", stream.Bytes()).All()
				if err != nil {
					return -1
				}
				defer it.Close()
				n := 0
				for it.Next() {
					if len(it.Key()) > 0 { // not the buffer's stream time
						n++
					}
				}
				return n
			}
			joined := func(n int) []string {
				var got []string
				for _, m := range kafkatest.ConsumeN(t, brokers, out, n, 60*time.Second) {
					got = append(got, m.Key+"="+m.Value)
				}
				return got
			}

			app, stop := startApp(t, top(), append(opts, stream.StateDir(t.TempDir()))...)
			require.Eventually(t, func() bool { return loaded(app) }, 60*time.Second, 20*time.Millisecond)
			kafkatest.ProduceStrings(t, brokers, orders, []kafkatest.KV{
				{Key: "a", Value: "o1", Timestamp: at(1500)}, {Key: "a", Value: "o2", Timestamp: at(2500)},
				{Key: "a", Value: "o3", Timestamp: at(3500)},
				{Key: "b", Value: "o4", Timestamp: at(2000)}, {Key: "b", Value: "o5", Timestamp: at(2600)},
				// Past every order by more than the grace period: they are
				// joined; these two wait in the buffer.
				{Key: "a", Value: "f", Timestamp: at(10000)}, {Key: "b", Value: "f", Timestamp: at(10000)},
			})
			got := joined(5)
			// Per key in order; the keys may be in different partitions.
			require.Equal(t, []string{"a=o1@1", "a=o2@2", "a=o3@3"}, slices.DeleteFunc(slices.Clone(got), func(s string) bool { return s[0] != 'a' }))
			require.Equal(t, []string{"b=o4@9", "b=o5@none"}, slices.DeleteFunc(slices.Clone(got), func(s string) bool { return s[0] != 'b' }))
			kafkatest.ProduceStrings(t, brokers, orders, []kafkatest.KV{{Key: "a", Value: "p", Timestamp: at(10100)}})
			require.Eventually(t, func() bool { return buffered(app) == 3 }, 60*time.Second, 20*time.Millisecond, "buffered: %d", buffered(app))
			require.NoError(t, stop())

			// A new instance restores the history and the grace buffer.
			app2, stop2 := startApp(t, top(), append(opts, stream.StateDir(t.TempDir()))...)
			require.Eventually(t, func() bool { return loaded(app2) }, 60*time.Second, 20*time.Millisecond)
			// 2200 is behind the buffer's stream time (10100) by more than
			// the grace period: joined at once, with a's value at 2200.
			kafkatest.ProduceStrings(t, brokers, orders, []kafkatest.KV{{Key: "a", Value: "o6", Timestamp: at(2200)}})
			require.Equal(t, "a=o6@2", joined(6)[5])
			// A later order releases the buffered ones, in time order.
			kafkatest.ProduceStrings(t, brokers, orders, []kafkatest.KV{{Key: "a", Value: "z", Timestamp: at(20000)}})
			require.Equal(t, []string{"a=f@3", "a=p@3"}, joined(8)[6:])
			require.NoError(t, stop2())
		})
	}
}
