package stream_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// Versioned tables refuse what they do not support yet, and bad grace
// periods, with ErrInvalidTopology.
func TestVersionedTopologyErrors(t *testing.T) {
	str, i64 := stream.String(), stream.Int64()
	vt := func(b *stream.Builder) *stream.Table[string, int64] {
		return stream.VersionedTableSource(b, "t", str, i64, time.Minute)
	}
	join := func(b *stream.Builder, tbl *stream.Table[string, int64], j stream.Joined[string, int64]) {
		stream.JoinTable(stream.Source(b, "s", str, i64), tbl, func(a, b int64) int64 { return a + b }, j)
	}
	for name, build := range map[string]func(b *stream.Builder){
		"no serdes":          func(b *stream.Builder) { stream.VersionedTableSource[string, int64](b, "t", nil, nil, time.Minute) },
		"negative retention": func(b *stream.Builder) { stream.VersionedTableSource(b, "t", str, i64, -time.Second) },
		"GroupTableBy": func(b *stream.Builder) {
			stream.GroupTableBy(vt(b), func(k string, v int64) (string, int64) { return k, v }, stream.Grouped[string, int64]{KeySerde: str, ValueSerde: i64})
		},
		"GroupTableBy after Filter": func(b *stream.Builder) {
			stream.GroupTableBy(vt(b).Filter(func(string, int64) bool { return true }), func(k string, v int64) (string, int64) { return k, v },
				stream.Grouped[string, int64]{KeySerde: str, ValueSerde: i64})
		},
		"table–table join": func(b *stream.Builder) {
			stream.JoinTables(stream.TableSource(b, "u", str, i64), vt(b), func(a, b int64) int64 { return a + b })
		},
		"foreign-key join": func(b *stream.Builder) {
			stream.JoinTablesOnForeignKey(stream.TableSource(b, "u", str, i64), vt(b), func(k string, _ int64) (string, bool) { return k, true },
				func(a, b int64) int64 { return a + b })
		},
		"Suppress": func(b *stream.Builder) {
			vt(b).Suppress(stream.Suppressed[string, int64]{TimeLimit: time.Second})
		},
		"grace with a table that is not versioned": func(b *stream.Builder) {
			join(b, stream.TableSource(b, "t", str, i64), stream.Joined[string, int64]{Grace: time.Second})
		},
		"grace longer than the history retention": func(b *stream.Builder) {
			join(b, vt(b), stream.Joined[string, int64]{Grace: 2 * time.Minute})
		},
		"negative grace": func(b *stream.Builder) {
			join(b, vt(b), stream.Joined[string, int64]{Grace: -time.Second})
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := stream.NewBuilder()
			build(b)
			_, err := b.Build()
			require.ErrorIs(t, err, stream.ErrInvalidTopology)
			switch name {
			case "GroupTableBy", "GroupTableBy after Filter", "table–table join", "foreign-key join", "Suppress", "grace with a table that is not versioned":
				require.ErrorContains(t, err, "versioned")
			}
		})
	}
	// The grace period may equal the retention.
	b := stream.NewBuilder()
	join(b, vt(b), stream.Joined[string, int64]{Grace: time.Minute})
	_, err := b.Build()
	require.NoError(t, err)
}

// A versioned table keeps each key's history: a stream record joins the
// value its key had at the record's timestamp, an out-of-order table
// update goes into the history without replacing the latest value, a
// record older than the history retention is dropped, and queries see the
// latest values. A restart keeps the history and the store's stream time.
func TestVersionedTableAsOfJoinAndRestart(t *testing.T) {
	str := stream.String()
	b := stream.NewBuilder()
	prices := stream.VersionedTableSource(b, "prices", str, str, 20*time.Millisecond, stream.Materialized[string, string]{StoreName: "prices"})
	stream.ToStreamWithTombstones(prices).To("changes", str, stream.TombstoneSerde(str))
	stream.LeftJoinTable(stream.Source(b, "orders", str, str), prices, func(o string, p *string) string {
		if p == nil {
			return o + "@none"
		}
		return o + "@" + *p
	}).To("out", str, str)
	d := buildDriver(t, b)
	pin := streamtest.NewInputTopic(d, "prices", str, stream.TombstoneSerde(str))
	oin := streamtest.NewInputTopic(d, "orders", str, str)
	out := streamtest.NewOutputTopic(d, "out", str, str)
	changes := streamtest.NewOutputTopic(d, "changes", str, stream.TombstoneSerde(str))
	price := func(k string, v *string, ts int64) { require.NoError(t, pin.PipeAt(k, v, time.UnixMilli(ts))) }
	p := func(s string) *string { return &s }
	order := func(k, v string, ts int64) { require.NoError(t, oin.PipeAt(k, v, time.UnixMilli(ts))) }
	joined := func() []string {
		t.Helper()
		kvs, err := out.ReadKeyValues()
		require.NoError(t, err)
		var s []string
		for _, kv := range kvs {
			s = append(s, kv.Key+"="+kv.Value)
		}
		return s
	}
	price("a", p("1"), 100)
	price("a", p("3"), 120)
	price("a", p("2"), 110) // out of order: into the history
	price("b", p("9"), 105)
	price("b", nil, 115)
	order("a", "o1", 105)
	order("a", "o2", 112)
	order("a", "o3", 125)
	order("a", "o0", 99)
	order("b", "o4", 110)
	order("b", "o5", 116)
	require.Equal(t, []string{"a=o1@1", "a=o2@2", "a=o3@3", "a=o0@none", "b=o4@9", "b=o5@none"}, joined())
	// Every update but none dropped was forwarded, out of order or not.
	recs, err := changes.ReadRecords()
	require.NoError(t, err)
	require.Len(t, recs, 5)
	require.Equal(t, int64(110), recs[2].Timestamp.UnixMilli())

	check := func() {
		t.Helper()
		q := streamtest.KeyValueStore[string, string](d, "prices", str)
		v, found, err := q.Get("a")
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, "3", v, "the latest value, not the last one written")
		_, found, err = q.Get("b")
		require.NoError(t, err)
		require.False(t, found, "deleted")
		it, err := q.All()
		require.NoError(t, err)
		var all []string
		for it.Next() {
			all = append(all, it.Key()+"="+it.Value())
		}
		require.NoError(t, it.Err())
		require.NoError(t, it.Close())
		require.Equal(t, []string{"a=3"}, all)
	}
	check()
	require.NoError(t, d.Restart())
	check()
	// The store's stream time (120) survived: 99 is older than 120-20 and
	// dropped; 115 is not.
	price("a", p("x"), 99)
	price("a", p("y"), 115)
	require.Equal(t, int64(1), d.DroppedRecords()["expired"])
	recs, err = changes.ReadRecords()
	require.NoError(t, err)
	require.Len(t, recs, 1)
	order("a", "o6", 116)
	order("a", "o7", 99) // older than 120-20: only the latest value, which is newer
	order("a", "o8", 121)
	require.Equal(t, []string{"a=o6@y", "a=o7@none", "a=o8@3"}, joined())
}

// Versions that no read can reach any more are deleted when their key is
// written; keys with 0x00 bytes keep their order and their own history.
func TestVersionedStoreCleanupAndKeyOrder(t *testing.T) {
	b := stream.NewBuilder()
	bs, str := stream.Bytes(), stream.String()
	stream.VersionedTableSource(b, "t", bs, str, 5*time.Millisecond, stream.Materialized[[]byte, string]{StoreName: "t"})
	d := buildDriver(t, b)
	in := streamtest.NewInputTopic(d, "t", bs, stream.TombstoneSerde(str))
	put := func(k string, v *string, ts int64) { require.NoError(t, in.PipeAt([]byte(k), v, time.UnixMilli(ts))) }
	p := func(s string) *string { return &s }
	q := streamtest.KeyValueStore[[]byte, string](d, "t", bs)
	for ts := int64(0); ts < 50; ts++ {
		put("k", p("v"), ts)
	}
	// The cutoff is 49-5: versions 0..43, whose successors start at or
	// before it, are gone; 44..49 stay.
	require.Equal(t, int64(6), q.ApproximateNumEntries())
	put("k", nil, 50)
	put("a\x00", p("2"), 50)
	put("a", p("1"), 50)
	put("a\x00\x00", p("3"), 50)
	put("b", p("4"), 50)
	put("b", nil, 51)
	it, err := q.All()
	require.NoError(t, err)
	var all []string
	for it.Next() {
		all = append(all, string(it.Key())+"="+it.Value())
	}
	require.NoError(t, it.Err())
	require.NoError(t, it.Close())
	require.Equal(t, []string{"a=1", "a\x00=2", "a\x00\x00=3"}, all)
	it, err = q.Range([]byte("a\x00"), []byte("b"))
	require.NoError(t, err)
	all = nil
	for it.Next() {
		all = append(all, string(it.Key())+"="+it.Value())
	}
	require.NoError(t, it.Close())
	require.Equal(t, []string{"a\x00=2", "a\x00\x00=3"}, all)
	_, found, err := q.Get([]byte("k"))
	require.NoError(t, err)
	require.False(t, found)
	// k (6 versions, the last a deletion) and b (a value, then a deletion)
	// are not written again: a sweep of the whole store, after as many
	// puts as it had entries (at least 1024), deletes them once the stream
	// time has passed their deletions by more than the retention.
	require.Equal(t, int64(6+3+2), q.ApproximateNumEntries())
	for ts := int64(100); ts < 100+1024-56; ts++ { // 56 puts before
		put("z", p("z"), ts)
	}
	require.Equal(t, int64(3+6), q.ApproximateNumEntries(), "a, a0, a00, and z from its latest six")
}

// With a grace period, stream records wait until the stream time of the
// join's stream records passes them by the grace period, then join the
// table as of their timestamps, in timestamp order, with their headers.
// A record already later than that joins at once. Buffered records
// survive a restart, and a redelivered buffered record is not buffered
// twice.
func TestVersionedJoinGraceBuffer(t *testing.T) {
	str := stream.String()
	b := stream.NewBuilder()
	tbl := stream.VersionedTableSource(b, "t", str, str, time.Second)
	stream.JoinTable(stream.Source(b, "s", str, str), tbl, func(v, tv string) string { return v + "@" + tv },
		stream.Joined[string, string]{Name: "j", Grace: 10 * time.Millisecond}).To("out", str, str)
	d := buildDriver(t, b)
	tin := streamtest.NewInputTopic(d, "t", str, str)
	sin := streamtest.NewInputTopic(d, "s", str, str)
	out := streamtest.NewOutputTopic(d, "out", str, str)
	read := func() []string {
		t.Helper()
		recs, err := out.ReadRecords()
		require.NoError(t, err)
		var s []string
		for _, r := range recs {
			e := fmt.Sprintf("%s=%s/%d", r.Key, r.Value, r.Timestamp.UnixMilli())
			for _, h := range r.Headers {
				e += " " + h.Key + ":" + string(h.Value)
			}
			s = append(s, e)
		}
		return s
	}
	require.NoError(t, tin.PipeAt("a", "t1", time.UnixMilli(100)))
	require.NoError(t, sin.PipeRecord(stream.Record[string, string]{Key: "a", Value: "s1", Timestamp: time.UnixMilli(105),
		Headers: []stream.Header{{Key: "h", Value: []byte("1")}}}))
	require.NoError(t, sin.PipeAt("a", "s0", time.UnixMilli(103)))
	require.Empty(t, read(), "held back")
	// A table update that arrives late but within the grace period is seen.
	require.NoError(t, tin.PipeAt("a", "t2", time.UnixMilli(102)))
	require.NoError(t, d.Restart())
	require.NoError(t, d.Redeliver("s", 0, 0))
	require.NoError(t, sin.PipeAt("b", "s2", time.UnixMilli(115)))
	require.Equal(t, []string{"a=s0@t2/103", "a=s1@t2/105 h:1"}, read())
	// 101 is behind 115-10: joined at once, as of its time.
	require.NoError(t, sin.PipeAt("a", "s3", time.UnixMilli(101)))
	require.Equal(t, []string{"a=s3@t1/101"}, read())
	require.NoError(t, sin.PipeAt("c", "s4", time.UnixMilli(200)))
	require.Empty(t, read(), "b and c have no value in the table")
}

// Records buffered while processing one input record (a FlatMapValues
// upstream) with equal timestamps and keys are all kept, in order.
func TestVersionedJoinGraceBufferKeepsRecordsOfOneInput(t *testing.T) {
	str := stream.String()
	b := stream.NewBuilder()
	tbl := stream.VersionedTableSource(b, "t", str, str, time.Second)
	s := stream.FlatMapValues(stream.Source(b, "s", str, str), func(_, v string) []string { return []string{v + "1", v + "2", v + "3"} })
	stream.JoinTable(s, tbl, func(v, tv string) string { return v + "@" + tv },
		stream.Joined[string, string]{Grace: 5 * time.Millisecond, ValueSerde: str}).To("out", str, str)
	d := buildDriver(t, b)
	require.NoError(t, streamtest.NewInputTopic(d, "t", str, str).PipeAt("a", "t", time.UnixMilli(1)))
	sin := streamtest.NewInputTopic(d, "s", str, str)
	require.NoError(t, sin.PipeAt("a", "x", time.UnixMilli(10)))
	require.NoError(t, sin.PipeAt("a", "y", time.UnixMilli(10)))
	require.NoError(t, sin.PipeAt("a", "z", time.UnixMilli(20)))
	kvs, err := streamtest.NewOutputTopic(d, "out", str, str).ReadKeyValues()
	require.NoError(t, err)
	var got []string
	for _, kv := range kvs {
		got = append(got, kv.Value)
	}
	require.Equal(t, []string{"x1@t", "x2@t", "x3@t", "y1@t", "y2@t", "y3@t"}, got)
}

// Kafka Streams' versioned store keeps no trace of a deletion at the very
// time of a key's only value: reads see the deletion, but a later
// out-of-order value before it becomes the latest value (the cross-check
// found this). The store's stream time survives a restart all the same.
func TestVersionedDeletionAtTheLatestValuesTime(t *testing.T) {
	str := stream.String()
	b := stream.NewBuilder()
	tbl := stream.VersionedTableSource(b, "t", str, str, 20*time.Millisecond)
	stream.LeftJoinTable(stream.Source(b, "s", str, str), tbl, func(v string, tv *string) string {
		if tv == nil {
			return v + "@none"
		}
		return v + "@" + *tv
	}).To("out", str, str)
	d := buildDriver(t, b)
	tin := streamtest.NewInputTopic(d, "t", str, stream.TombstoneSerde(str))
	sin := streamtest.NewInputTopic(d, "s", str, str)
	out := streamtest.NewOutputTopic(d, "out", str, str)
	p := func(s string) *string { return &s }
	join := func(k string, ts int64) string {
		t.Helper()
		require.NoError(t, sin.PipeAt(k, "s", time.UnixMilli(ts)))
		kvs, err := out.ReadKeyValues()
		require.NoError(t, err)
		require.Len(t, kvs, 1)
		return kvs[0].Value
	}
	require.NoError(t, tin.PipeAt("a", p("2"), time.UnixMilli(40)))
	require.NoError(t, tin.PipeAt("a", nil, time.UnixMilli(40)))
	require.Equal(t, "s@none", join("a", 45))
	require.NoError(t, tin.PipeAt("a", p("7"), time.UnixMilli(28)))
	require.Equal(t, "s@7", join("a", 45), "the deletion at 40 left no trace")
	// With an earlier value ending there, the deletion stays.
	require.NoError(t, tin.PipeAt("b", p("1"), time.UnixMilli(30)))
	require.NoError(t, tin.PipeAt("b", p("2"), time.UnixMilli(40)))
	require.NoError(t, tin.PipeAt("b", nil, time.UnixMilli(40)))
	require.NoError(t, tin.PipeAt("b", p("3"), time.UnixMilli(35)))
	require.Equal(t, "s@none", join("b", 45))
	require.Equal(t, "s@3", join("b", 36))
	// A deletion put out of order before the latest value ends at it too
	// (found by the cross-check, seed 1796201597536977331): the deletion at
	// the latest value's time stays after an out-of-order value.
	require.NoError(t, tin.PipeAt("c", p("8"), time.UnixMilli(45)))
	require.NoError(t, tin.PipeAt("c", nil, time.UnixMilli(41)))
	require.NoError(t, tin.PipeAt("c", nil, time.UnixMilli(45)))
	require.NoError(t, tin.PipeAt("c", p("4"), time.UnixMilli(43)))
	require.Equal(t, "s@none", join("c", 45))
	require.Equal(t, "s@4", join("c", 44))
	// A value that replaced a lone deletion at its time keeps it.
	require.NoError(t, tin.PipeAt("d", nil, time.UnixMilli(40)))
	require.NoError(t, tin.PipeAt("d", p("5"), time.UnixMilli(40)))
	require.NoError(t, tin.PipeAt("d", nil, time.UnixMilli(40)))
	require.NoError(t, tin.PipeAt("d", p("7"), time.UnixMilli(30)))
	require.Equal(t, "s@none", join("d", 45))

	// The store's stream time survives a restart although the only
	// version with its timestamp is gone.
	b = stream.NewBuilder()
	stream.VersionedTableSource(b, "t", str, str, 20*time.Millisecond)
	d = buildDriver(t, b)
	tin = streamtest.NewInputTopic(d, "t", str, stream.TombstoneSerde(str))
	require.NoError(t, tin.PipeAt("a", p("1"), time.UnixMilli(10)))
	require.NoError(t, tin.PipeAt("b", p("2"), time.UnixMilli(40)))
	require.NoError(t, tin.PipeAt("b", nil, time.UnixMilli(40)))
	require.NoError(t, d.Restart())
	require.NoError(t, tin.PipeAt("c", p("x"), time.UnixMilli(19))) // older than 40-20
	require.Equal(t, int64(1), d.DroppedRecords()["expired"])
	require.NoError(t, tin.PipeAt("c", p("y"), time.UnixMilli(20)))
	require.Equal(t, int64(1), d.DroppedRecords()["expired"])
}
