package stream_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// TestSuppressSurvivesRestart: the buffer is a store with a changelog, so
// updates held back before a restart are forwarded after it, once stream
// time passes their time limit; a buffer over MaxRecords with
// ShutDownWhenFull fails the task with a clear error.
func TestSuppressSurvivesRestart(t *testing.T) {
	build := func(s stream.Suppressed[string, int64]) *streamtest.Driver {
		b := stream.NewBuilder()
		stream.ToStreamWithTombstones(stream.TableSource(b, "t", stream.String(), stream.Int64()).Suppress(s)).
			To("out", stream.String(), stream.TombstoneSerde(stream.Int64()))
		top, err := b.Build()
		require.NoError(t, err)
		d, err := streamtest.New(top, stream.StartTime(time.UnixMilli(0)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	d := build(stream.Suppressed[string, int64]{TimeLimit: 10 * time.Millisecond, Name: "sup"})
	in := streamtest.NewInputTopic(d, "t", stream.String(), stream.TombstoneSerde(stream.Int64()))
	out := streamtest.NewOutputTopic(d, "out", stream.String(), stream.TombstoneSerde(stream.Int64()))
	v := func(n int64) *int64 { return &n }
	require.NoError(t, in.PipeAt("a", v(1), time.UnixMilli(100)))
	require.NoError(t, in.PipeAt("a", v(2), time.UnixMilli(105)))
	require.NoError(t, in.PipeAt("b", v(7), time.UnixMilli(106)))
	recs, err := out.ReadRecords()
	require.NoError(t, err)
	require.Empty(t, recs, "held back")
	require.NoError(t, d.Restart())
	// Stream time 111 passes a's first update (100) + 10 ms: a's latest
	// value goes, with its update's timestamp; b (106) waits.
	require.NoError(t, in.PipeAt("c", v(3), time.UnixMilli(111)))
	recs, err = out.ReadRecords()
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, "a", recs[0].Key)
	require.Equal(t, int64(2), *recs[0].Value)
	require.Equal(t, int64(105), recs[0].Timestamp.UnixMilli())

	full := build(stream.Suppressed[string, int64]{TimeLimit: time.Hour, MaxRecords: 1, ShutDownWhenFull: true})
	in2 := streamtest.NewInputTopic(full, "t", stream.String(), stream.TombstoneSerde(stream.Int64()))
	require.NoError(t, in2.PipeAt("a", v(1), time.UnixMilli(1)))
	require.ErrorContains(t, in2.PipeAt("b", v(1), time.UnixMilli(2)), "over its MaxRecords")
}

// Rate-limiting a table's updates: each key's first update waits 10 ms of
// stream time, and only the key's latest value then goes on.
func ExampleTable_Suppress() {
	b := stream.NewBuilder()
	prices := stream.TableSource(b, "prices", stream.String(), stream.String())
	stream.ToStreamWithTombstones(prices.Suppress(stream.Suppressed[string, string]{TimeLimit: 10 * time.Millisecond})).
		To("out", stream.String(), stream.TombstoneSerde(stream.String()))
	d := runExample(b, stream.String(), func(d *streamtest.Driver) {
		in := streamtest.NewInputTopic(d, "prices", stream.String(), stream.TombstoneSerde(stream.String()))
		_ = in.PipeAt("apple", ptr("1.00"), time.UnixMilli(100))
		_ = in.PipeAt("apple", ptr("1.10"), time.UnixMilli(104))
		_ = in.PipeAt("pear", ptr("2.00"), time.UnixMilli(105))
		_ = in.PipeAt("apple", ptr("1.20"), time.UnixMilli(109))
		_ = in.PipeAt("kiwi", ptr("0.50"), time.UnixMilli(112)) // stream time 112: apple is due
	})
	defer d.Close()
	// Output:
	// apple=1.20 @109
}
