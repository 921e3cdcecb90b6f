package aggregation

import (
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/window"
)

// DistinctUsers counts the distinct user_ids per emoji and window: one row
// per (window, emoji) when the window closes, keyed by the emoji, with
// Label the emoji and Value the number of users. Its name is
// "distinct-users".
//
// The window keeps the set of user_ids (sorted, length-prefixed, stored and
// changelogged as it is), so its state grows with the distinct users per
// emoji and window — at most the window's records: 2,000 ids of ~10 bytes
// at 1,000 emojis/s, about 22 KB — and so does the cost of adding a user
// (one copy of the set). An approximate count (HyperLogLog) would bound
// both; this one is exact.
func DistinctUsers() Aggregation { return distinctUsers{} }

type distinctUsers struct{}

func (distinctUsers) Name() string  { return "distinct-users" }
func (distinctUsers) Title() string { return "Distinct users per emoji" }

func (distinctUsers) Build(in Input) (*stream.Stream[string, wire.Row], error) {
	users := window.Aggregate(stream.GroupByKey(in.Events), in.Windows,
		func() userSet { return nil },
		func(_ string, e wire.Event, seen userSet) userSet { return seen.add(e.UserID) },
		stream.SerdeFuncs(encodeUserSet, decodeUserSet),
		in.WindowOpts()...)
	return stream.Map(users, func(w window.Windowed[string], seen userSet) (string, wire.Row) {
		return w.Key, RowOf(w, w.Key, float64(seen.size()))
	}), nil
}
