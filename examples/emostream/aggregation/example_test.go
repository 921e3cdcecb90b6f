package aggregation_test

import (
	"fmt"
	"time"

	"github.com/emostream/emostream/examples/emostream/aggregation"
	"github.com/emostream/emostream/examples/emostream/aggregator"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
	"github.com/emostream/emostream/pkg/window"
)

// recipe:start

// MaxPerUser is the most emojis one user sent of an emoji in a window: a
// high value means someone is hammering the button.
type MaxPerUser struct{}

// Name selects it: --aggregations count,max-per-user. Its rows go to
// topic2-max-per-user.
func (MaxPerUser) Name() string { return "max-per-user" }

// Title heads its dashboard panel.
func (MaxPerUser) Title() string { return "Most emojis from one user" }

// Build counts per user in the count's windows and keeps the largest count.
func (MaxPerUser) Build(in aggregation.Input) (*stream.Stream[string, wire.Row], error) {
	perUser := window.Aggregate(stream.GroupByKey(in.Events), in.Windows,
		func() map[string]int64 { return map[string]int64{} },
		func(_ string, e wire.Event, n map[string]int64) map[string]int64 {
			n[e.UserID]++
			return n
		},
		stream.JSON[map[string]int64](),
		in.WindowOpts()...) // named "max-per-user", final results, late records handled
	return stream.Map(perUser, func(w window.Windowed[string], n map[string]int64) (string, wire.Row) {
		var most int64
		for _, c := range n {
			most = max(most, c)
		}
		return w.Key, aggregation.RowOf(w, w.Key, float64(most))
	}), nil
}

// recipe:end

// A custom aggregation, run by the aggregator's own topology next to the
// count and tested with streamtest: examples/emostream/README.md, "Write
// your own aggregator".
func Example() {
	top, err := aggregator.Topology(aggregator.Config{
		Aggregations: []aggregation.Aggregation{MaxPerUser{}},
	})
	if err != nil {
		panic(err)
	}
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	d, _ := streamtest.New(top, stream.StartTime(t0))
	defer d.Close()

	in := streamtest.NewInputTopic(d, "topic1", stream.String(), wire.EventSerde())
	send := func(user, emoji string, ms int) {
		ts := t0.Add(time.Duration(ms) * time.Millisecond)
		_ = in.PipeAt(emoji, wire.Event{UserID: user, EmojiType: emoji, Timestamp: ts.UnixMilli()}, ts)
	}
	send("ann", "🔥", 100)
	send("ann", "🔥", 200)
	send("bob", "🔥", 300)
	send("ann", "🔥", 400)
	send("bob", "👍🏽", 500)
	_ = d.AdvanceWallClock(2600 * time.Millisecond) // past window_end + grace: the window closes

	out := streamtest.NewOutputTopic(d, "topic2-max-per-user", stream.String(), wire.RowSerde())
	rows, _ := out.ReadKeyValues()
	for _, r := range rows {
		fmt.Printf("%s %s %s: %v\n", r.Value.Aggregation, time.UnixMilli(r.Value.WindowStart).UTC().Format("15:04:05"),
			r.Value.Label, r.Value.Value)
	}
	// Output:
	// max-per-user 12:00:00 👍🏽: 1
	// max-per-user 12:00:00 🔥: 3
}
