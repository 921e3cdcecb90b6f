package window_test

import (
	"fmt"
	"time"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
	"github.com/emostream/emostream/pkg/window"
)

// Two-second tumbling counts per key, one final result per window, closed by
// the wall clock even when no more input arrives.
func ExampleCount() {
	b := stream.NewBuilder()
	clicks := stream.Source(b, "clicks", stream.String(), stream.String())
	counts := window.Count(stream.GroupByKey(clicks),
		window.OfSizeAndGrace(2*time.Second, 500*time.Millisecond),
		window.Emit(window.OnWindowClose), window.LateRecordsTo("clicks-late"))
	counts.To("click-counts", window.WindowedSerde(stream.String()), stream.Int64())
	top, _ := b.Build()

	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d, _ := streamtest.New(top, stream.StartTime(t0))
	defer d.Close()
	in := streamtest.NewInputTopic(d, "clicks", stream.String(), stream.String())
	_ = in.PipeAt("home", "", t0.Add(100*time.Millisecond))
	_ = in.PipeAt("home", "", t0.Add(900*time.Millisecond))
	_ = in.PipeAt("cart", "", t0.Add(1500*time.Millisecond))
	_ = d.AdvanceWallClock(2600 * time.Millisecond)          // past end + grace
	_ = in.PipeAt("home", "", t0.Add(1000*time.Millisecond)) // late

	out := streamtest.NewOutputTopic(d, "click-counts", window.WindowedSerde(stream.String()), stream.Int64())
	results, _ := out.ReadKeyValues()
	for _, r := range results {
		fmt.Printf("%s [%s, %s) = %d\n", r.Key.Key, r.Key.Start.Format("15:04:05"), r.Key.End.Format("15:04:05"), r.Value)
	}
	fmt.Println("late records:", len(d.RawOutput("clicks-late")))
	// Output:
	// cart [00:00:00, 00:00:02) = 1
	// home [00:00:00, 00:00:02) = 2
	// late records: 1
}

// A custom aggregator: the distinct users per emoji in each window.
func ExampleAggregate() {
	b := stream.NewBuilder()
	reactions := stream.Source(b, "reactions", stream.String(), stream.String()) // emoji -> user
	distinct := window.Aggregate(stream.GroupByKey(reactions),
		window.OfSize(time.Minute),
		func() map[string]bool { return map[string]bool{} },
		func(_ string, user string, seen map[string]bool) map[string]bool { seen[user] = true; return seen },
		stream.JSON[map[string]bool](),
		window.DropLateRecords())
	stream.MapValues(distinct, func(_ window.Windowed[string], seen map[string]bool) int64 { return int64(len(seen)) }).
		To("distinct-users", window.WindowedSerde(stream.String()), stream.Int64())
	top, _ := b.Build()

	d, _ := streamtest.New(top)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "reactions", stream.String(), stream.String())
	t0 := time.Unix(0, 0)
	for _, u := range []string{"ann", "bob", "ann"} {
		_ = in.PipeAt("🔥", u, t0)
	}
	out := streamtest.NewOutputTopic(d, "distinct-users", window.WindowedSerde(stream.String()), stream.Int64())
	results, _ := out.ReadKeyValues()
	fmt.Println("updates:", len(results), "last:", results[len(results)-1].Value)
	// Output:
	// updates: 3 last: 2
}

// The largest value per key and window with Reduce; each result carries the
// timestamp of the latest record in its window, as in Kafka Streams.
func ExampleReduce() {
	b := stream.NewBuilder()
	temps := stream.Source(b, "temps", stream.String(), stream.Int64())
	window.Reduce(stream.GroupByKey(temps), window.OfSize(time.Minute),
		func(_ string, agg, v int64) int64 { return max(agg, v) },
		window.Emit(window.OnWindowClose), window.WallClockClose(false), window.DropLateRecords()).
		To("max-temps", window.WindowedSerde(stream.String()), stream.Int64())
	top, _ := b.Build()

	d, _ := streamtest.New(top)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "temps", stream.String(), stream.Int64())
	t0 := time.Unix(0, 0).UTC()
	_ = in.PipeAt("oslo", 3, t0.Add(10*time.Second))
	_ = in.PipeAt("oslo", 7, t0.Add(40*time.Second))
	_ = in.PipeAt("oslo", 5, t0.Add(20*time.Second))
	_ = in.PipeAt("oslo", 1, t0.Add(61*time.Second)) // closes [0s, 60s)

	out := streamtest.NewOutputTopic(d, "max-temps", window.WindowedSerde(stream.String()), stream.Int64())
	recs, _ := out.ReadRecords()
	for _, r := range recs {
		fmt.Printf("%s [%v, %v) max %d at %v\n", r.Key.Key, r.Key.Start.Sub(t0), r.Key.End.Sub(t0), r.Value, r.Timestamp.Sub(t0))
	}
	// Output:
	// oslo [0s, 1m0s) max 7 at 40s
}

// Session counts with Kafka Streams' tombstones: when a record merges two
// sessions, both are retracted before the merged session is written, so a
// compacted topic of the results keeps only live sessions.
func ExampleCountSessionsWithTombstones() {
	b := stream.NewBuilder()
	clicks := stream.Source(b, "clicks", stream.String(), stream.String())
	window.CountSessionsWithTombstones(stream.GroupByKey(clicks), window.OfInactivityGapAndGrace(5*time.Second, 10*time.Second), window.DropLateRecords()).
		To("sessions", window.WindowedSerde(stream.String()), window.TombstoneSerde(stream.Int64()))
	top, _ := b.Build()

	d, _ := streamtest.New(top)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "clicks", stream.String(), stream.String())
	t0 := time.Unix(0, 0).UTC()
	for _, s := range []int{0, 8, 4} { // 4 bridges the sessions at 0 and 8
		_ = in.PipeAt("ann", "", t0.Add(time.Duration(s)*time.Second))
	}
	out := streamtest.NewOutputTopic(d, "sessions", window.WindowedSerde(stream.String()), window.TombstoneSerde(stream.Int64()))
	recs, _ := out.ReadRecords()
	for _, r := range recs {
		v := "tombstone"
		if r.Value != nil {
			v = fmt.Sprint(*r.Value)
		}
		fmt.Printf("%s [%v, %v] %s\n", r.Key.Key, r.Key.Start.Sub(t0), r.Key.End.Sub(t0), v)
	}
	// Output:
	// ann [0s, 0s] 1
	// ann [8s, 8s] 1
	// ann [0s, 0s] tombstone
	// ann [8s, 8s] tombstone
	// ann [0s, 8s] 3
}

// The hopping windows a record belongs to.
func ExampleTimeWindows_WindowsFor() {
	w := window.OfSize(10 * time.Second).AdvanceBy(5 * time.Second)
	for _, win := range w.WindowsFor(time.UnixMilli(12_000)) {
		fmt.Println(win.Start.UnixMilli(), win.End.UnixMilli())
	}
	// Output:
	// 5000 15000
	// 10000 20000
}
