package aggregator_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/aggregator"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

func TestTopologyCountsLateAndMalformed(t *testing.T) {
	top, err := aggregator.Topology(aggregator.Config{Scale: 2})
	require.NoError(t, err)
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	d, err := streamtest.New(top, stream.StartTime(base), stream.Partitions(2),
		stream.OnDeserializationError(stream.SendToDeadLetter, "topic1.dlq"))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "topic1", stream.String(), wire.EventSerde())
	at := func(ms int64) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	for _, e := range []struct {
		emoji string
		ms    int64
	}{{"🔥", 10}, {"🔥", 1999}, {"👍🏽", 500}, {"🔥", 2100}, {"🔥", 2200}, {"🔥", 2300}} {
		require.NoError(t, in.PipeAt(e.emoji, wire.Event{UserID: "u", EmojiType: e.emoji, Timestamp: at(e.ms).UnixMilli()}, at(e.ms)))
	}
	raw := streamtest.NewInputTopic(d, "topic1", stream.String(), stream.String())
	require.NoError(t, raw.PipeRaw([]byte("🔥"), []byte(`{"user_id":1}`), at(2400)))

	out := streamtest.NewOutputTopic(d, "topic2", stream.String(), wire.ResultSerde())
	// The wall clock passes 2000 + 500: window [0, 2000) closes with idle input.
	require.NoError(t, d.AdvanceWallClock(2600*time.Millisecond))
	got, err := out.ReadKeyValues()
	require.NoError(t, err)
	start := base.UnixMilli()
	require.ElementsMatch(t, []stream.KeyValue[string, wire.Result]{
		{Key: "🔥", Value: wire.Result{WindowStart: start, WindowEnd: start + 2000, EmojiType: "🔥", Count: 2, Bursts: 1}},
		{Key: "👍🏽", Value: wire.Result{WindowStart: start, WindowEnd: start + 2000, EmojiType: "👍🏽", Count: 1, Bursts: 1}},
	}, got)

	// A late record goes to the DLQ, not into a count.
	require.NoError(t, in.PipeAt("🔥", wire.Event{UserID: "u", EmojiType: "🔥", Timestamp: at(1000).UnixMilli()}, at(1000)))
	require.NoError(t, d.AdvanceWallClock(2*time.Second))
	got, err = out.ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []stream.KeyValue[string, wire.Result]{
		{Key: "🔥", Value: wire.Result{WindowStart: start + 2000, WindowEnd: start + 4000, EmojiType: "🔥", Count: 3, Bursts: 2}},
	}, got)
	dlq := d.RawOutput("topic1.dlq")
	require.Len(t, dlq, 2)
	reasons := []string{}
	for _, r := range dlq {
		for _, h := range r.Headers {
			if h.Key == "error" {
				reasons = append(reasons, string(h.Value))
			}
		}
	}
	require.Len(t, reasons, 2)
	require.Contains(t, reasons[0], "user_id")
	require.Equal(t, "late", reasons[1])
}
