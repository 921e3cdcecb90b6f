package stream_test

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestIntegrationForeignKeyJoin runs, on the embedded broker and on the
// real Kafka, a foreign-key join of orders (3 partitions) with customers
// (2 partitions: the tables need not be co-partitioned). It checks the
// result store and the output topic after customers are added, renamed and
// deleted and orders moved; the internal topics' partition counts (the
// subscription topic has the customers', the response topic the orders');
// and that a new instance restores the results and the subscriptions
// (a customer renamed after the restart reaches its orders).
func TestIntegrationForeignKeyJoin(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			orders, customers, out := kafkatest.UniqueName(t, "orders"), kafkatest.UniqueName(t, "customers"), kafkatest.UniqueName(t, "out")
			appID := kafkatest.UniqueName(t, "app")
			kafkatest.CreateTopic(t, brokers, orders, 3)
			kafkatest.CreateTopicWithConfig(t, brokers, customers, 2, map[string]string{"cleanup.policy": "compact"})
			kafkatest.CreateTopic(t, brokers, out, 1)
			// The customers' topic is partitioned as Kafka's Java clients
			// (and this package's sinks) do, by the murmur2 hash of the
			// key, where the join looks for a customer id.
			murmur := sarama.NewMurmur2Partitioner(customers)
			customer := func(id, name string, tombstone bool) kafkatest.KV {
				p, err := murmur.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(id)}, 2)
				require.NoError(t, err)
				return kafkatest.KV{Key: id, Value: name, Tombstone: tombstone, Partition: &p}
			}
			kafkatest.ProduceStrings(t, brokers, customers, []kafkatest.KV{
				customer("c1", "ann", false), customer("c2", "bob", false), customer("c3", "cid", false),
			})
			kafkatest.ProduceStrings(t, brokers, orders, []kafkatest.KV{
				{Key: "o1", Value: "c1"}, {Key: "o2", Value: "c1"}, {Key: "o3", Value: "c2"},
				{Key: "o4", Value: "c2"}, {Key: "o5", Value: "c3"}, {Key: "o6", Value: "c4"},
			})
			top := func() *stream.Topology {
				b := stream.NewBuilder()
				o := stream.TableSource(b, orders, stream.String(), stream.String())
				c := stream.TableSource(b, customers, stream.String(), stream.String())
				joined := stream.JoinTablesOnForeignKey(o, c,
					func(_, customerID string) (string, bool) { return customerID, true },
					func(customerID, name string) string { return customerID + "=" + name },
					stream.ForeignKeyJoined[string, string]{Name: "orders-customers",
						Materialized: stream.Materialized[string, string]{StoreName: "orders-customers", ValueSerde: stream.String()}})
				stream.ToStreamWithTombstones(joined).To(out, stream.String(), stream.TombstoneSerde(stream.String()))
				top, err := b.Build()
				require.NoError(t, err)
				return top
			}
			opts := []stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID)}
			state := func(app *stream.App) map[string]string {
				s := stream.QueryStore[string, string](app, "orders-customers", stream.String())
				m := map[string]string{}
				for i := 1; i <= 6; i++ {
					k := fmt.Sprintf("o%d", i)
					v, found, err := s.Get(k)
					switch {
					case err != nil:
						m[k] = "error: " + err.Error()
					case found:
						m[k] = v
					}
				}
				return m
			}
			want := map[string]string{"o1": "c1=ann", "o2": "c1=ann", "o3": "c2=bob", "o4": "c2=bob", "o5": "c3=cid"}
			app, stop := startApp(t, top(), opts...)
			require.Eventually(t, func() bool { return maps.Equal(state(app), want) }, 60*time.Second, 20*time.Millisecond, "last state: %v", state(app))

			kafkatest.ProduceStrings(t, brokers, customers, []kafkatest.KV{customer("c1", "anna", false), customer("c2", "", true)})
			want = map[string]string{"o1": "c1=anna", "o2": "c1=anna", "o5": "c3=cid"}
			require.Eventually(t, func() bool { return maps.Equal(state(app), want) }, 60*time.Second, 20*time.Millisecond, "last state: %v", state(app))
			kafkatest.ProduceStrings(t, brokers, orders, []kafkatest.KV{{Key: "o3", Value: "c3"}})
			want["o3"] = "c3=cid"
			require.Eventually(t, func() bool { return maps.Equal(state(app), want) }, 60*time.Second, 20*time.Millisecond, "last state: %v", state(app))

			client, err := sarama.NewClient(brokers, kafkatest.SaramaConfig())
			require.NoError(t, err)
			defer client.Close()
			for topic, n := range map[string]int{"subscription-registration-topic": 2, "subscription-response-topic": 3} {
				parts, err := client.Partitions(appID + "-orders-customers-" + topic)
				require.NoError(t, err)
				require.Len(t, parts, n, topic)
			}
			require.NoError(t, stop())

			// Five joins; two orders renamed and two deleted with c2; o3
			// joined with c3. The last record per order is the state.
			last := map[string]string{}
			msgs := kafkatest.ConsumeN(t, brokers, out, 10, 60*time.Second)
			for _, m := range msgs {
				if m.Tombstone {
					delete(last, m.Key)
				} else {
					last[m.Key] = m.Value
				}
			}
			require.Equal(t, want, last, "output: %v", msgs)

			// A new instance restores the results and the subscriptions.
			app2, stop2 := startApp(t, top(), opts...)
			require.Eventually(t, func() bool { return maps.Equal(state(app2), want) }, 60*time.Second, 20*time.Millisecond, "last state: %v", state(app2))
			kafkatest.ProduceStrings(t, brokers, customers, []kafkatest.KV{customer("c3", "cyd", false)})
			want = map[string]string{"o1": "c1=anna", "o2": "c1=anna", "o3": "c3=cyd", "o5": "c3=cyd"}
			require.Eventually(t, func() bool { return maps.Equal(state(app2), want) }, 60*time.Second, 20*time.Millisecond, "last state: %v", state(app2))
			require.NoError(t, stop2())
		})
	}
}
