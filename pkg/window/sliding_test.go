package window_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
	"github.com/emostream/emostream/pkg/window"
)

// recordSliding is Kafka Streams' sliding window algorithm
// (KStreamSlidingWindowAggregate) on plain maps, counting: the model
// TestRandomAgainstOracle checks the stores, redelivery, wall clock and
// emission against. TestMatchesKafkaStreams checks the algorithm itself.
func (o *oracle) recordSliding(part *oraclePart, p int32, offset int64, key string, ts, bound int64) {
	d := o.diff
	if ts < 0 || ts+d <= bound {
		o.late[fmt.Sprintf("%d/%d", p, offset)] = true
		o.close(part, bound)
		return
	}
	type win struct {
		start, count, maxTs int64
	}
	var wins []win // the key's windows, by start
	for k, c := range part.counts {
		if k.key == key {
			wins = append(wins, win{k.start, c, part.maxTs[k]})
		}
	}
	sort.Slice(wins, func(i, j int) bool { return wins[i].start < wins[j].start })
	has := map[int64]bool{}
	for _, w := range wins {
		has[w.start] = true
	}
	// add puts the record into the window at start (value base, latest
	// record baseMax before it), unless the window is closed.
	added := 0
	// A record aggregated into no window (all those holding it are closed)
	// is late, though Kafka Streams' first test passes it.
	done := func() {
		if added == 0 {
			o.late[fmt.Sprintf("%d/%d", p, offset)] = true
		}
		o.close(part, bound)
	}
	add := func(start, base, baseMax int64) {
		if start+d <= bound {
			return
		}
		added++
		k := winKey{key, start, start + d}
		part.counts[k] = base + 1
		part.maxTs[k] = max(baseMax, ts)
	}
	putRight := func(w win) {
		k := winKey{key, ts + 1, ts + 1 + d}
		part.counts[k], part.maxTs[k] = w.count, w.maxTs
	}
	var prev *int64
	if ts < d {
		// Early record: [0, d] stands for its left window.
		var combined, right *win
		for i := range wins {
			w := &wins[i]
			switch {
			case w.start == 0:
				combined = w
				if w.maxTs < ts {
					prev = &w.maxTs
				}
			case w.start <= ts:
				right = w
				add(w.start, w.count, w.maxTs)
			}
		}
		if right == nil && combined != nil && combined.maxTs > ts {
			right = combined
		}
		if !has[ts+1] && right != nil && right.maxTs > ts {
			putRight(*right)
		}
		if prev != nil && !has[*prev+1] {
			add(*prev+1, 0, ts)
		}
		if combined == nil {
			add(0, 0, ts)
		} else {
			add(0, combined.count, combined.maxTs)
		}
		done()
		return
	}
	var left, right *win
	leftExists := false
	seen := map[int64]bool{}
	// From the newest window starting at or before ts+1 down to the newest
	// one ending before ts, but not below ts - 2d.
	for i := len(wins) - 1; i >= 0; i-- {
		w := &wins[i]
		if w.start > ts+1 || w.start < max(0, ts-2*d) {
			continue
		}
		seen[w.start] = true
		end := w.start + d
		if w.start == ts+1 {
			continue
		}
		if end > ts {
			if right == nil {
				right = w
			}
			add(w.start, w.count, w.maxTs)
			continue
		}
		if end == ts {
			leftExists = true
			add(w.start, w.count, w.maxTs)
			if w.maxTs >= ts {
				done()
				return
			}
			prev = &w.maxTs
			continue
		}
		left, prev = w, &w.maxTs
		break
	}
	if prev != nil && !seen[*prev+1] && *prev+1+d >= ts {
		add(*prev+1, 0, ts)
	}
	if !leftExists {
		if prev != nil && ts-d <= *prev {
			add(ts-d, left.count, ts)
		} else {
			add(ts-d, 0, ts)
		}
	}
	if !seen[ts+1] && right != nil && right.maxTs > ts {
		putRight(*right)
	}
	done()
}

// idealSliding is the definition of sliding windows: every record's left
// window [ts-d, ts] ([0, d] for ts < d) and, when not empty, its right window
// [ts+1, ts+1+d], each with the number of records it holds.
func idealSliding(recs []refRecord, d int64) map[winKey]int64 {
	out := map[winKey]int64{}
	count := func(key string, start int64) int64 {
		var n int64
		for _, r := range recs {
			if r.key == key && start <= r.ts && r.ts <= start+d {
				n++
			}
		}
		return n
	}
	for _, r := range recs {
		left := max(0, r.ts-d)
		out[winKey{r.key, left, left + d}] = count(r.key, left)
		if n := count(r.key, r.ts+1); n > 0 {
			out[winKey{r.key, r.ts + 1, r.ts + 1 + d}] = n
		}
	}
	return out
}

// TestSlidingMatchesDefinition: while no window closes (a grace longer than
// the input), the windows and counts are exactly those of the definition,
// whatever the order of the input, with redeliveries; the interactive query
// sees the same windows.
func TestSlidingMatchesDefinition(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		d := []int64{1, 5, 100, 1000}[seed%4]
		b := stream.NewBuilder()
		src := stream.Source(b, "in", stream.String(), stream.String())
		counts := window.Count(stream.GroupByKey(src), window.OfTimeDifferenceAndGrace(time.Duration(d)*time.Millisecond, time.Hour),
			window.Named("c"), window.DropLateRecords())
		counts.To("out", window.WindowedSerde(stream.String()), stream.Int64())
		top, err := b.Build()
		require.NoError(t, err)
		dr, err := streamtest.New(top, stream.StartTime(time.UnixMilli(0)))
		require.NoError(t, err)
		in := streamtest.NewInputTopic(dr, "in", stream.String(), stream.String())
		out := streamtest.NewOutputTopic(dr, "out", window.WindowedSerde(stream.String()), stream.Int64())

		var recs []refRecord
		for i := range 150 {
			ts := rng.Int64N(max(3*d, 50)) // dense: many equal and neighbouring times
			if seed%2 == 0 {
				ts += int64(i) * d / 3 // drifting forward, still out of order
			}
			r := refRecord{[]string{"a", "b"}[rng.IntN(2)], ts}
			recs = append(recs, r)
			require.NoError(t, in.PipeAt(r.key, "", time.UnixMilli(r.ts)))
			if rng.IntN(10) == 0 {
				require.NoError(t, dr.Redeliver("in", 0, rng.Int64N(int64(len(recs)))))
			}
		}
		kvs, err := out.ReadKeyValues()
		require.NoError(t, err)
		latest := map[winKey]int64{}
		for _, kv := range kvs {
			latest[winKey{kv.Key.Key, kv.Key.Start.UnixMilli(), kv.Key.End.UnixMilli()}] = kv.Value
		}
		want := idealSliding(recs, d)
		require.Equal(t, want, latest, "seed %d, diff %d", seed, d)

		all, err := window.QueryWindowStore[string, int64](dr.StoreHost(), "c", stream.String()).FetchAll(time.UnixMilli(0), time.UnixMilli(1<<40))
		require.NoError(t, err)
		queried := map[winKey]int64{}
		for _, kv := range all {
			queried[winKey{kv.Key.Key, kv.Key.Start.UnixMilli(), kv.Key.End.UnixMilli()}] = kv.Value
		}
		require.Equal(t, want, queried, "seed %d: interactive query", seed)
		dr.Close()
	}
}

func TestSlidingWindowsValidation(t *testing.T) {
	for _, w := range []window.SlidingWindows{
		window.OfTimeDifference(0),
		window.OfTimeDifference(1500 * time.Microsecond),
		window.OfTimeDifferenceAndGrace(time.Second, -time.Second),
	} {
		b := stream.NewBuilder()
		src := stream.Source(b, "in", stream.String(), stream.String())
		window.Count(stream.GroupByKey(src), w, window.DropLateRecords()).To("out", window.WindowedSerde(stream.String()), stream.Int64())
		_, err := b.Build()
		require.ErrorIs(t, err, window.ErrInvalidWindows, "%+v", w)
	}
	w := window.OfTimeDifferenceAndGrace(2*time.Second, time.Second)
	require.Equal(t, 2*time.Second, w.TimeDifference())
	require.Equal(t, time.Second, w.GracePeriod())
}

// A negative timestamp has no sliding window (Kafka Streams drops such
// records at the source): it goes to the late-records topic with
// error=negative_timestamp.
func TestSlidingNegativeTimestamp(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.Source(b, "in", stream.String(), stream.String())
	window.Count(stream.GroupByKey(src), window.OfTimeDifference(time.Second), window.LateRecordsTo("late")).
		To("out", window.WindowedSerde(stream.String()), stream.Int64())
	top, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(top, stream.StartTime(time.UnixMilli(0)))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	require.NoError(t, in.PipeAt("a", "", time.UnixMilli(-5)))
	require.NoError(t, in.PipeAt("a", "", time.UnixMilli(5)))
	out := streamtest.NewOutputTopic(d, "out", window.WindowedSerde(stream.String()), stream.Int64())
	kvs, err := out.ReadKeyValues()
	require.NoError(t, err)
	var got []string
	for _, kv := range kvs {
		got = append(got, fmt.Sprintf("%s [%d,%d] %d", kv.Key.Key, kv.Key.Start.UnixMilli(), kv.Key.End.UnixMilli(), kv.Value))
	}
	require.Equal(t, []string{"a [0,1000] 1"}, got)
	require.Len(t, d.RawOutput("late"), 1)
}
