package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCountRepeats(t *testing.T) {
	rec := func(p int32, off int64, start int64, emoji string, count, ts int64) Record {
		return Record{Partition: p, Offset: off, Key: []byte(emoji), Value: mustResult(start, emoji, count), Timestamp: ts}
	}
	recs := []Record{
		// Out of order, as ReadAll returns partitions.
		rec(1, 0, w0, "👍🏽", 1, w0+5),
		rec(0, 2, w0, "🔥", 2, w0+9), // graceful repeat, identical
		rec(0, 0, w0, "🔥", 2, w0+9),
		rec(0, 1, w0+2000, "🔥", 1, w0+2001),
		rec(0, 3, w0+2000, "🔥", 1, w0+2001), // after the checkpoint, identical
		rec(1, 1, w0, "👍🏽", 1, w0+6),        // after, another timestamp
		rec(1, 2, w0, "👍🏽", 2, w0+5),        // after, another count
		{Partition: 1, Offset: 3, Value: []byte("junk")},
	}
	before := func(r Record) bool { return r.Offset <= 2 && r.Partition == 0 || r.Partition == 1 && r.Offset == 0 }
	s := CountRepeats(recs, before)
	require.Equal(t, 8, s.Records)
	require.Equal(t, 3, s.Cells)
	require.Equal(t, 1, s.Before)
	require.Equal(t, 1, s.BeforeIdentical)
	require.Equal(t, 3, s.After)
	require.Equal(t, 1, s.AfterIdentical)
	require.Len(t, s.Examples, 4)
	require.Equal(t, "graceful: window 1800000000000 (08:00:00.000) 🔥 at partition 0 offset 2, first at offset 0, identical", s.Examples[0])
	require.Contains(t, s.Examples[2], "after the SIGKILL: window 1800000000000 (08:00:00.000) 👍🏽 at partition 1 offset 1, first at offset 0, DIFFERENT: ")
	require.Equal(t, "topic2 8 records for 3 results; repeats: 1 after the graceful rebalances 1→2→1→2 (want 0; 1 identical), 3 after the SIGKILL (1 identical, 2 not)", s.String())

	// Value bytes count, not just the decoded result.
	recs = []Record{rec(0, 0, w0, "🔥", 2, w0+9), rec(0, 1, w0, "🔥", 2, w0+9)}
	recs[1].Value = append([]byte(" "), recs[1].Value...)
	s = CountRepeats(recs, func(Record) bool { return false })
	require.Equal(t, 1, s.After)
	require.Zero(t, s.AfterIdentical)
}
