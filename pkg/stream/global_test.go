package stream_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// A global table joined by a key computed from each record: every instance
// holds the whole table, so the stream is not repartitioned. A record whose
// user is unknown is dropped by JoinGlobal and kept by LeftJoinGlobal.
func ExampleJoinGlobal() {
	b := stream.NewBuilder()
	regions := stream.GlobalTableSource(b, "users", stream.String(), stream.String())
	clicks := stream.Source(b, "clicks", stream.String(), stream.String()) // key: page, value: user
	stream.LeftJoinGlobal(clicks, regions, func(_, user string) string { return user }, func(user string, region *string) string {
		if region == nil {
			return user + "@unknown"
		}
		return user + "@" + *region
	}).To("out", stream.String(), stream.String())
	d := runExample(b, stream.String(), func(d *streamtest.Driver) {
		users := streamtest.NewInputTopic(d, "users", stream.String(), stream.TombstoneSerde(stream.String()))
		in := streamtest.NewInputTopic(d, "clicks", stream.String(), stream.String())
		_ = users.PipeAt("alice", ptr("eu"), time.UnixMilli(1))
		_ = in.PipeAt("/home", "alice", time.UnixMilli(5))
		_ = in.PipeAt("/cart", "bob", time.UnixMilli(6))
		_ = users.PipeAt("alice", nil, time.UnixMilli(7))
		_ = in.PipeAt("/home", "alice", time.UnixMilli(8))
	})
	defer d.Close()
	// Output:
	// /home=alice@eu @5
	// /cart=bob@unknown @6
	// /home=alice@unknown @8
}

// TestGlobalTableValidation: misuse of global tables is a Build error.
func TestGlobalTableValidation(t *testing.T) {
	for name, build := range map[string]func(b *stream.Builder){
		"empty topic": func(b *stream.Builder) { stream.GlobalTableSource(b, "", stream.String(), stream.String()) },
		"nil serde":   func(b *stream.Builder) { stream.GlobalTableSource[string, string](b, "g", nil, stream.String()) },
		"twice": func(b *stream.Builder) {
			stream.GlobalTableSource(b, "g", stream.String(), stream.String())
			stream.GlobalTableSource(b, "g", stream.String(), stream.String())
		},
		"also a source": func(b *stream.Builder) {
			stream.GlobalTableSource(b, "in", stream.String(), stream.String())
		},
		"other builder": func(b *stream.Builder) {
			g := stream.GlobalTableSource(stream.NewBuilder(), "g", stream.String(), stream.String())
			stream.JoinGlobal(stream.Source(b, "in2", stream.String(), stream.String()), g,
				func(k, _ string) string { return k }, func(v, gv string) string { return v + gv })
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := stream.NewBuilder()
			stream.Source(b, "in", stream.String(), stream.String()).To("out", stream.String(), stream.String())
			build(b)
			_, err := b.Build()
			require.ErrorIs(t, err, stream.ErrInvalidTopology)
		})
	}
}

// TestIntegrationGlobalTable runs, on the embedded broker and on the real
// Kafka, two instances of an app whose stream (4 partitions) joins a
// global table read from a 3-partition compacted topic: every record is
// joined whatever partition its user's row is on, rows written before the
// start (with a tombstone) are there when the first record is processed,
// and an update written while the apps run is seen by later records.
func TestIntegrationGlobalTable(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			users, clicks, out := kafkatest.UniqueName(t, "users"), kafkatest.UniqueName(t, "clicks"), kafkatest.UniqueName(t, "out")
			appID := kafkatest.UniqueName(t, "app")
			kafkatest.CreateTopicWithConfig(t, brokers, users, 3, map[string]string{"cleanup.policy": "compact"})
			kafkatest.CreateTopic(t, brokers, clicks, 4)
			kafkatest.CreateTopic(t, brokers, out, 1)
			var rows []kafkatest.KV
			for i := range 30 {
				rows = append(rows, kafkatest.KV{Key: fmt.Sprintf("u%02d", i), Value: []string{"eu", "us", "ap"}[i%3]})
			}
			rows = append(rows, kafkatest.KV{Key: "u29", Tombstone: true})
			kafkatest.ProduceStrings(t, brokers, users, rows)
			top := func() *stream.Topology {
				b := stream.NewBuilder()
				g := stream.GlobalTableSource(b, users, stream.String(), stream.String())
				src := stream.Source(b, clicks, stream.String(), stream.String()) // key: click id, value: user
				stream.LeftJoinGlobal(src, g, func(_, user string) string { return user }, func(user string, region *string) string {
					if region == nil {
						return user + "@?"
					}
					return user + "@" + *region
				}).To(out, stream.String(), stream.String())
				top, err := b.Build()
				require.NoError(t, err)
				return top
			}
			opts := []stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID)}
			_, stop1 := startApp(t, top(), opts...)
			defer stop1()
			_, stop2 := startApp(t, top(), opts...)
			defer stop2()

			var first []kafkatest.KV
			for i := range 30 {
				first = append(first, kafkatest.KV{Key: fmt.Sprintf("c%02d", i), Value: fmt.Sprintf("u%02d", i)})
			}
			kafkatest.ProduceStrings(t, brokers, clicks, first)
			got := map[string]string{}
			for _, m := range kafkatest.ConsumeN(t, brokers, out, 30, 60*time.Second) {
				got[m.Key] = m.Value
			}
			for i := range 30 {
				want := fmt.Sprintf("u%02d@%s", i, []string{"eu", "us", "ap"}[i%3])
				if i == 29 {
					want = "u29@?"
				}
				require.Equal(t, want, got[fmt.Sprintf("c%02d", i)])
			}

			// An update while running reaches every instance's copy: probe
			// until records written after it see it (each round's 8 records
			// spread over the 4 partitions, so both instances answer).
			kafkatest.ProduceStrings(t, brokers, users, []kafkatest.KV{{Key: "u00", Value: "mars"}, {Key: "u29", Value: "moon"}})
			total := 30
			for round := 0; ; round++ {
				require.Less(t, round, 60, "the update was not seen")
				var probes []kafkatest.KV
				for i := range 8 {
					probes = append(probes, kafkatest.KV{Key: fmt.Sprintf("r%02dp%d", round, i), Value: []string{"u00", "u29"}[i%2]})
				}
				kafkatest.ProduceStrings(t, brokers, clicks, probes)
				total += len(probes)
				var seen []string
				for _, m := range kafkatest.ConsumeN(t, brokers, out, total, 60*time.Second) {
					if strings.HasPrefix(m.Key, fmt.Sprintf("r%02d", round)) {
						seen = append(seen, m.Value)
					}
				}
				slices.Sort(seen)
				if strings.Join(seen, ",") == "u00@mars,u00@mars,u00@mars,u00@mars,u29@moon,u29@moon,u29@moon,u29@moon" {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
		})
	}
}
