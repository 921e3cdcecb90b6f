package stream_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

func TestSetTimestamp(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.Source(b, "in", stream.String(), stream.String())
	// The value carries the event time in Unix ms; an unparsable one keeps
	// the record's timestamp.
	src.SetTimestamp(func(_ string, v string, ts time.Time) time.Time {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return ts
		}
		return time.UnixMilli(ms).UTC()
	}).To("out", stream.String(), stream.String())
	top, err := b.Build()
	require.NoError(t, err)

	d, err := streamtest.New(top)
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, in.PipeAt("a", "1000", at))
	require.NoError(t, in.PipeAt("b", "not a number", at))
	recs, err := streamtest.NewOutputTopic(d, "out", stream.String(), stream.String()).ReadRecords()
	require.NoError(t, err)
	require.Len(t, recs, 2)
	require.Equal(t, time.UnixMilli(1000).UTC(), recs[0].Timestamp.UTC())
	require.Equal(t, at, recs[1].Timestamp.UTC())
	require.Contains(t, top.Describe(), "KSTREAM-SETTIMESTAMP")
}
