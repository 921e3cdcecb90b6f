package stream_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestIntegrationTableAndJoin runs, on the embedded broker and on the real
// Kafka, a table read from a 2-partition topic with a tombstone, a count
// per region over it (GroupTableBy, through a repartition topic) and a
// stream–table left join with a co-partitioned click stream. It checks the
// table and the counts through QueryStore, the joined records on the
// output topic, and that a new instance restores the table and the counts
// from their changelogs.
func TestIntegrationTableAndJoin(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			users, clicks, out := kafkatest.UniqueName(t, "users"), kafkatest.UniqueName(t, "clicks"), kafkatest.UniqueName(t, "out")
			appID := kafkatest.UniqueName(t, "app")
			kafkatest.CreateTopicWithConfig(t, brokers, users, 2, map[string]string{"cleanup.policy": "compact"})
			kafkatest.CreateTopic(t, brokers, clicks, 2)
			kafkatest.CreateTopic(t, brokers, out, 1)
			kafkatest.ProduceStrings(t, brokers, users, []kafkatest.KV{
				{Key: "u1", Value: "eu"}, {Key: "u2", Value: "us"}, {Key: "u3", Value: "eu"}, {Key: "u4", Value: "eu"},
				{Key: "u3", Tombstone: true}, {Key: "u4", Value: "us"},
			})
			top := func() *stream.Topology {
				b := stream.NewBuilder()
				tbl := stream.TableSource(b, users, stream.String(), stream.String(), stream.Materialized[string, string]{StoreName: "users"})
				stream.CountTable(
					stream.GroupTableBy(tbl, func(_, region string) (string, string) { return region, region },
						stream.Grouped[string, string]{Name: "by-region", KeySerde: stream.String(), ValueSerde: stream.String()}),
					stream.Materialized[string, int64]{StoreName: "per-region"})
				src := stream.Source(b, clicks, stream.String(), stream.String())
				stream.LeftJoinTable(src, tbl, func(page string, region *string) string {
					if region == nil {
						return page + "@?"
					}
					return page + "@" + *region
				}).To(out, stream.String(), stream.String())
				top, err := b.Build()
				require.NoError(t, err)
				return top
			}
			opts := []stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID)}
			state := func(app *stream.App) string {
				u := stream.QueryStore[string, string](app, "users", stream.String())
				c := stream.QueryStore[string, int64](app, "per-region", stream.String())
				var s string
				for _, k := range []string{"u1", "u2", "u3", "u4"} {
					v, ok, err := u.Get(k)
					s += fmt.Sprintf("%s=%v/%v/%v ", k, v, ok, err)
				}
				for _, k := range []string{"eu", "us"} {
					v, ok, err := c.Get(k)
					s += fmt.Sprintf("%s=%v/%v/%v ", k, v, ok, err)
				}
				return s
			}
			const want = "u1=eu/true/<nil> u2=us/true/<nil> u3=/false/<nil> u4=us/true/<nil> eu=1/true/<nil> us=2/true/<nil> "
			app, stop := startApp(t, top(), opts...)
			require.Eventually(t, func() bool { return state(app) == want }, 60*time.Second, 20*time.Millisecond, "last state: %s", state(app))

			kafkatest.ProduceStrings(t, brokers, clicks, []kafkatest.KV{
				{Key: "u1", Value: "/a"}, {Key: "u2", Value: "/b"}, {Key: "u3", Value: "/c"}, {Key: "u4", Value: "/d"},
			})
			var got []string
			for _, m := range kafkatest.ConsumeN(t, brokers, out, 4, 60*time.Second) {
				got = append(got, m.Key+"="+m.Value)
			}
			slices.Sort(got)
			require.Equal(t, []string{"u1=/a@eu", "u2=/b@us", "u3=/c@?", "u4=/d@us"}, got)
			require.NoError(t, stop())

			// A new instance restores the table and the counts from their
			// changelogs.
			app2, stop2 := startApp(t, top(), opts...)
			require.Eventually(t, func() bool { return state(app2) == want }, 60*time.Second, 20*time.Millisecond, "last state: %s", state(app2))
			require.NoError(t, stop2())
		})
	}
}
