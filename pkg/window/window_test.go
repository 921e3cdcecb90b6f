package window_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
	"github.com/emostream/emostream/pkg/window"
)

func countTopology(t *testing.T, w window.Windows, opts ...window.Opt) *stream.Topology {
	b := stream.NewBuilder()
	src := stream.Source(b, "in", stream.String(), stream.String())
	counts := window.Count(stream.GroupByKey(src), w, append([]window.Opt{window.Named("counts"), window.LateRecordsTo("late")}, opts...)...)
	counts.To("out", window.WindowedSerde(stream.String()), stream.Int64())
	top, err := b.Build()
	require.NoError(t, err)
	return top
}

type result struct {
	key        string
	start, end int64
	count      int64
}

func read(t *testing.T, d *streamtest.Driver) []result {
	out := streamtest.NewOutputTopic(d, "out", window.WindowedSerde(stream.String()), stream.Int64())
	recs, err := out.ReadKeyValues()
	require.NoError(t, err)
	var res []result
	for _, r := range recs {
		res = append(res, result{r.Key.Key, r.Key.Start.UnixMilli(), r.Key.End.UnixMilli(), r.Value})
	}
	return res
}

func ms(n int64) time.Time { return time.UnixMilli(n) }

func TestTumblingEmitFinalStreamTime(t *testing.T) {
	top := countTopology(t, window.OfSizeAndGrace(2*time.Second, 500*time.Millisecond), window.Emit(window.OnWindowClose), window.WallClockClose(false))
	d, err := streamtest.New(top)
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	require.NoError(t, in.PipeAt("a", "", ms(100)))
	require.NoError(t, in.PipeAt("b", "", ms(1999)))
	require.NoError(t, in.PipeAt("a", "", ms(2100)))
	require.Empty(t, read(t, d))
	// Stream time 2499 < 2000 + 500: window [0,2000) still open; this record is on time.
	require.NoError(t, in.PipeAt("a", "", ms(1500)))
	require.NoError(t, in.PipeAt("a", "", ms(2499)))
	require.Empty(t, read(t, d))
	// Stream time reaches 2500 = end + grace: the window closes.
	require.NoError(t, in.PipeAt("b", "", ms(2500)))
	require.Equal(t, []result{{"a", 0, 2000, 2}, {"b", 0, 2000, 1}}, read(t, d))
	// Late now: goes to the DLQ with headers, not counted.
	require.NoError(t, in.PipeAt("a", "", ms(10)))
	late := d.RawOutput("late")
	require.Len(t, late, 1)
	hs := map[string]string{}
	for _, h := range late[0].Headers {
		hs[h.Key] = string(h.Value)
	}
	require.Equal(t, map[string]string{"error": "late", "source_topic": "in", "source_partition": "0", "source_offset": "6", "source_timestamp": "10"}, hs)
	// Stamped with the (driver's) wall clock when dead-lettered.
	require.Equal(t, d.WallClock(), late[0].Timestamp)
	// The wall clock alone does not close windows with WallClockClose(false).
	require.NoError(t, d.AdvanceWallClock(time.Hour))
	require.Empty(t, read(t, d))
}

func TestTumblingEmitFinalWallClock(t *testing.T) {
	top := countTopology(t, window.OfSizeAndGrace(2*time.Second, 500*time.Millisecond), window.Emit(window.OnWindowClose))
	d, err := streamtest.New(top, stream.StartTime(ms(0)))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	require.NoError(t, in.PipeAt("a", "", ms(100)))
	require.NoError(t, in.PipeAt("a", "", ms(200)))
	require.NoError(t, d.AdvanceWallClock(2400*time.Millisecond))
	require.Empty(t, read(t, d))
	require.NoError(t, d.AdvanceWallClock(200*time.Millisecond))
	require.Equal(t, []result{{"a", 0, 2000, 2}}, read(t, d))
	// Closed by the wall clock, so late although stream time is only 200.
	require.NoError(t, in.PipeAt("a", "", ms(300)))
	require.Len(t, d.RawOutput("late"), 1)
	require.NoError(t, d.AdvanceWallClock(10*time.Second))
	require.Empty(t, read(t, d))
}

func TestHoppingOnUpdate(t *testing.T) {
	top := countTopology(t, window.OfSize(10*time.Second).AdvanceBy(5*time.Second))
	d, err := streamtest.New(top)
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	require.NoError(t, in.PipeAt("k", "", ms(7000)))
	require.NoError(t, in.PipeAt("k", "", ms(9000)))
	require.Equal(t, []result{
		{"k", 0, 10000, 1}, {"k", 5000, 15000, 1},
		{"k", 0, 10000, 2}, {"k", 5000, 15000, 2},
	}, read(t, d))
}

func TestQueryWindowStore(t *testing.T) {
	pipe := func(t *testing.T, opts ...window.Opt) *streamtest.Driver {
		top := countTopology(t, window.OfSize(2*time.Second), opts...)
		d, err := streamtest.New(top, stream.Partitions(3))
		require.NoError(t, err)
		t.Cleanup(func() { _ = d.Close() })
		in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
		for _, r := range []struct {
			k  string
			ts int64
		}{{"a", 100}, {"a", 2100}, {"a", 2200}, {"b", 2300}, {"a", 4100}, {"a", 5900}} {
			require.NoError(t, in.PipeAt(r.k, "", ms(r.ts)))
		}
		return d
	}
	// The default retention is Kafka Streams' (size + grace), counted from
	// the window's close: at stream time 5900 the window [0, 2000), closed
	// at 2000, is gone (purged from 4000 on, once a commit covered its
	// close); [2000, 4000) is kept until 6000.
	d := pipe(t)
	q := window.QueryWindowStore[string, int64](d.StoreHost(), "counts", stream.String())
	got, err := q.Fetch("a", ms(0), ms(2000))
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, int64(2000), got[0].Key.Start.UnixMilli())

	// A longer retention keeps it.
	d = pipe(t, window.Retention(time.Minute))
	q = window.QueryWindowStore[string, int64](d.StoreHost(), "counts", stream.String())
	got, err = q.Fetch("a", ms(0), ms(2000))
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, int64(1), got[0].Value)
	require.Equal(t, int64(0), got[0].Key.Start.UnixMilli())
	require.Equal(t, int64(2), got[1].Value)
	require.Equal(t, int64(4000), got[1].Key.End.UnixMilli())
	all, err := q.FetchAll(ms(2000), ms(2000))
	require.NoError(t, err)
	require.Len(t, all, 2)
	seen := map[string]int64{}
	for _, kv := range all {
		seen[kv.Key.Key] = kv.Value
	}
	require.Equal(t, map[string]int64{"a": 2, "b": 1}, seen)
}

// A stream re-stamped with SetTimestamp is windowed by its new timestamps.
func TestSetTimestampBeforeWindowing(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.Source(b, "in", stream.String(), stream.String())
	shifted := src.SetTimestamp(func(_, _ string, ts time.Time) time.Time { return ts.Add(2 * time.Second) })
	counts := window.Count(stream.GroupByKey(shifted), window.OfSize(2*time.Second), window.Named("counts"), window.DropLateRecords())
	counts.To("out", window.WindowedSerde(stream.String()), stream.Int64())
	top, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(top)
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	require.NoError(t, in.PipeAt("a", "", ms(100)))
	require.NoError(t, in.PipeAt("a", "", ms(1900)))
	require.Equal(t, []result{{"a", 2000, 4000, 1}, {"a", 2000, 4000, 2}}, read(t, d))
}
