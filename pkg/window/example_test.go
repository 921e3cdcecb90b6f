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
