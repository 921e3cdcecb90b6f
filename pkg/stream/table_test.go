package stream_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

func buildDriver(t *testing.T, b *stream.Builder, opts ...stream.Opt) *streamtest.Driver {
	t.Helper()
	top, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(top, append([]stream.Opt{stream.StartTime(time.UnixMilli(0))}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// Bad topologies get a clear ErrInvalidTopology from Build, not a panic.
func TestTableTopologyErrors(t *testing.T) {
	str, i64 := stream.String(), stream.Int64()
	for name, build := range map[string]func(b *stream.Builder){
		"table without serdes": func(b *stream.Builder) { stream.TableSource[string, string](b, "t", nil, nil) },
		"GroupTableBy without serdes": func(b *stream.Builder) {
			stream.GroupTableBy(stream.TableSource(b, "t", str, i64), func(k string, v int64) (string, int64) { return k, v }, stream.Grouped[string, int64]{})
		},
		"regrouping a stream aggregation": func(b *stream.Builder) {
			counts := stream.Count(stream.GroupByKey(stream.Source(b, "s", str, str)), stream.Materialized[string, int64]{})
			stream.GroupTableBy(counts, func(k string, v int64) (string, int64) { return k, v }, stream.Grouped[string, int64]{KeySerde: str, ValueSerde: i64})
		},
		"table join with a stream aggregation": func(b *stream.Builder) {
			counts := stream.Count(stream.GroupByKey(stream.Source(b, "s", str, str)), stream.Materialized[string, int64]{})
			stream.JoinTables(stream.TableSource(b, "t", str, i64), counts, func(a, b int64) int64 { return a + b })
		},
		"stream join without serdes": func(b *stream.Builder) {
			l := stream.MapValues(stream.Source(b, "l", str, str), func(_, v string) int { return len(v) })
			stream.JoinStreams(l, stream.Source(b, "r", str, str), func(a int, b string) string { return b },
				stream.JoinTimeDifferenceAndGrace(time.Second, 0), stream.StreamJoined[string, int, string]{})
		},
		"negative join window": func(b *stream.Builder) {
			stream.JoinStreams(stream.Source(b, "l", str, str), stream.Source(b, "r", str, str), func(a, b string) string { return a + b },
				stream.JoinWindows{Before: -time.Second}, stream.StreamJoined[string, string, string]{})
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := stream.NewBuilder()
			build(b)
			_, err := b.Build()
			require.ErrorIs(t, err, stream.ErrInvalidTopology)
		})
	}
}

// A stream aggregation's table can be joined with a stream (its store has
// no timestamps, which a stream–table join does not need).
func TestJoinStreamWithAggregationTable(t *testing.T) {
	str, i64 := stream.String(), stream.Int64()
	b := stream.NewBuilder()
	counts := stream.Count(stream.GroupByKey(stream.Source(b, "events", str, str)), stream.Materialized[string, int64]{})
	stream.JoinTable(stream.Source(b, "asks", str, str), counts, func(_ string, n int64) int64 { return n }).To("out", str, i64)
	d := buildDriver(t, b)
	ev := streamtest.NewInputTopic(d, "events", str, str)
	require.NoError(t, ev.Pipe("a", "x"))
	require.NoError(t, ev.Pipe("a", "x"))
	asks := streamtest.NewInputTopic(d, "asks", str, str)
	require.NoError(t, asks.Pipe("a", "?"))
	require.NoError(t, asks.Pipe("b", "?"))
	kvs, err := streamtest.NewOutputTopic(d, "out", str, i64).ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []stream.KeyValue[string, int64]{{Key: "a", Value: 2}}, kvs)
}

// A stream whose key was changed is repartitioned before it is joined with
// a table, so each record meets the table partition of its new key.
func TestJoinTableRepartitionsAChangedKey(t *testing.T) {
	str := stream.String()
	b := stream.NewBuilder()
	users := stream.TableSource(b, "users", str, str)
	clicks := stream.SelectKey(stream.Source(b, "clicks", str, str), func(_, user string) string { return user })
	stream.LeftJoinTable(clicks, users, func(user string, region *string) string {
		if region == nil {
			return user + "@?"
		}
		return user + "@" + *region
	}, stream.Joined[string, string]{Name: "clicks-by-user", KeySerde: str, ValueSerde: str}).To("out", str, str)
	top, err := b.Build()
	require.NoError(t, err)
	require.Contains(t, top.Describe(), "clicks-by-user-repartition")
	d := buildDriver(t, b, stream.Partitions(4))
	u := streamtest.NewInputTopic(d, "users", str, stream.TombstoneSerde(str))
	for _, kv := range [][2]string{{"u1", "eu"}, {"u2", "us"}, {"u3", "ap"}} {
		v := kv[1]
		require.NoError(t, u.Pipe(kv[0], &v))
	}
	c := streamtest.NewInputTopic(d, "clicks", str, str)
	for i, user := range []string{"u1", "u2", "u3", "u9"} {
		require.NoError(t, c.Pipe(string(rune('a'+i)), user))
	}
	kvs, err := streamtest.NewOutputTopic(d, "out", str, str).ReadKeyValues()
	require.NoError(t, err)
	require.ElementsMatch(t, []stream.KeyValue[string, string]{
		{Key: "u1", Value: "u1@eu"}, {Key: "u2", Value: "u2@us"}, {Key: "u3", Value: "u3@ap"}, {Key: "u9", Value: "u9@?"},
	}, kvs)
}

// Redelivered table updates (as after a crash) do not count twice in a
// regrouped table, and a clean restart keeps the table and the counts.
func TestTableRedeliveryAndRestart(t *testing.T) {
	str := stream.String()
	b := stream.NewBuilder()
	users := stream.TableSource(b, "users", str, str, stream.Materialized[string, string]{StoreName: "users"})
	stream.CountTable(stream.GroupTableBy(users, func(_, region string) (string, string) { return region, region },
		stream.Grouped[string, string]{KeySerde: str, ValueSerde: str}), stream.Materialized[string, int64]{StoreName: "per-region"})
	d := buildDriver(t, b)
	in := streamtest.NewInputTopic(d, "users", str, stream.TombstoneSerde(str))
	pipe := func(k string, v *string) { require.NoError(t, in.Pipe(k, v)) }
	eu, us := "eu", "us"
	pipe("u1", &eu)
	pipe("u2", &eu)
	pipe("u3", &us)
	pipe("u2", &us)
	pipe("u3", nil)
	check := func() {
		t.Helper()
		counts := streamtest.KeyValueStore[string, int64](d, "per-region", str)
		for region, want := range map[string]int64{"eu": 1, "us": 1} {
			n, found, err := counts.Get(region)
			require.NoError(t, err)
			require.True(t, found, region)
			require.Equal(t, want, n, region)
		}
		tbl := streamtest.KeyValueStore[string, string](d, "users", str)
		it, err := tbl.All()
		require.NoError(t, err)
		var got []string
		for it.Next() {
			got = append(got, it.Key()+"="+it.Value())
		}
		require.NoError(t, it.Close())
		require.Equal(t, []string{"u1=eu", "u2=us"}, got)
	}
	check()
	require.NoError(t, d.Redeliver("users", 0, 0))
	check()
	require.NoError(t, d.Restart())
	check()
}

// A corrupt record on a table repartition topic is an error naming the
// record, not a panic.
func TestCorruptTableRecordsAreErrors(t *testing.T) {
	str := stream.String()
	b := stream.NewBuilder()
	users := stream.TableSource(b, "users", str, str)
	stream.CountTable(stream.GroupTableBy(users, func(_, region string) (string, string) { return region, region },
		stream.Grouped[string, string]{Name: "g", KeySerde: str, ValueSerde: str}), stream.Materialized[string, int64]{})
	d := buildDriver(t, b, stream.ApplicationID("app"))
	in := streamtest.NewInputTopic(d, "app-g-repartition", str, str)
	err := in.PipeRaw([]byte("k"), []byte{9, 0, 0, 0, 0}, time.UnixMilli(1))
	require.ErrorContains(t, err, "table change")
}

// A stream–stream join's stores are exact when its input is replayed after
// a restart (its time tracker, in memory as in Kafka Streams, starts over):
// a later record joins each earlier record once.
func TestStreamJoinReplayAfterRestart(t *testing.T) {
	str := stream.String()
	b := stream.NewBuilder()
	stream.OuterJoinStreams(stream.Source(b, "l", str, str), stream.Source(b, "r", str, str), func(l, r *string) string {
		s := "-"
		if l != nil {
			s = *l
		}
		if r != nil {
			s += "+" + *r
		}
		return s
	}, stream.JoinTimeDifferenceAndGrace(10*time.Millisecond, 0), stream.StreamJoined[string, string, string]{}).To("out", str, str)
	d := buildDriver(t, b)
	l := streamtest.NewInputTopic(d, "l", str, str)
	r := streamtest.NewInputTopic(d, "r", str, str)
	out := streamtest.NewOutputTopic(d, "out", str, str)
	require.NoError(t, l.PipeAt("a", "1", time.UnixMilli(5)))
	require.NoError(t, l.PipeAt("a", "2", time.UnixMilli(6)))
	require.NoError(t, r.PipeAt("b", "y", time.UnixMilli(8)))
	require.NoError(t, d.Restart())
	require.NoError(t, d.Redeliver("l", 0, 0))
	require.NoError(t, d.Redeliver("r", 0, 0))
	_, err := out.ReadKeyValues() // replays may repeat results (at least once)
	require.NoError(t, err)
	require.NoError(t, r.PipeAt("a", "x", time.UnixMilli(9)))
	kvs, err := out.ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []stream.KeyValue[string, string]{{Key: "a", Value: "1+x"}, {Key: "a", Value: "2+x"}}, kvs)
	// Closing the windows emits b's unmatched record once.
	require.NoError(t, l.PipeAt("c", "3", time.UnixMilli(100)))
	kvs, err = out.ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []stream.KeyValue[string, string]{{Key: "b", Value: "-+y"}}, kvs)
}

// A table record with a null key is dropped and counted, as in Kafka
// Streams.
func TestTableDropsNullKeys(t *testing.T) {
	str := stream.String()
	b := stream.NewBuilder()
	stream.TableSource(b, "users", str, str, stream.Materialized[string, string]{StoreName: "users"})
	d := buildDriver(t, b)
	in := streamtest.NewInputTopic(d, "users", str, str)
	require.NoError(t, in.PipeRaw(nil, []byte("eu"), time.UnixMilli(1)))
	require.Equal(t, int64(1), d.DroppedRecords()["null key"])
	require.Equal(t, int64(0), streamtest.KeyValueStore[string, string](d, "users", str).ApproximateNumEntries())
}
