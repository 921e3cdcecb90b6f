package aggregation

import (
	"fmt"

	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/window"
)

// UnknownRegion is the region of a user the users topic has no row for.
const UnknownRegion = "unknown"

// PerRegion counts the emojis of each window per region of their users:
// one row per (window, region) when the window closes, keyed by the region,
// with Label the region and Value the count. A user's region comes from
// usersTopic, a compacted topic keyed by user_id whose values are region
// names (a tombstone forgets the user); a user without a row counts under
// UnknownRegion. Its name is "per-region".
//
// The users topic is read as a global table (stream.GlobalTableSource):
// every aggregator holds all of it, read to its end before it counts, and
// follows it, so an event is joined with its user's region as of when it is
// processed (stream.LeftJoinGlobal) — no repartitioning by user. The joined
// events are re-keyed by region and counted in the count's windows through
// a repartition topic (<application id>-per-region-repartition).
func PerRegion(usersTopic string) Aggregation { return perRegion{users: usersTopic} }

type perRegion struct{ users string }

func (perRegion) Name() string  { return "per-region" }
func (perRegion) Title() string { return "Reactions per region" }

// TableTopics is the users topic: EmoStream creates it, compacted, when it
// does not exist.
func (p perRegion) TableTopics() []string { return []string{p.users} }

func (p perRegion) Build(in Input) (*stream.Stream[string, wire.Row], error) {
	if p.users == "" {
		return nil, fmt.Errorf("%w: per-region needs a users topic", ErrInvalid)
	}
	users := stream.GlobalTableSource(in.Events.Builder(), p.users, stream.String(), stream.String(),
		stream.Materialized[string, string]{StoreName: in.Name + "-users"})
	regions := stream.LeftJoinGlobal(in.Events, users,
		func(_ string, e wire.Event) string { return e.UserID },
		func(_ wire.Event, region *string) string {
			if region == nil || *region == "" {
				return UnknownRegion
			}
			return *region
		})
	byRegion := stream.GroupBy(regions, func(_, region string) string { return region },
		stream.Grouped[string, string]{Name: in.Name, KeySerde: stream.String(), ValueSerde: stream.String()})
	counts := window.Count(byRegion, in.Windows, in.WindowOpts()...)
	return stream.Map(counts, func(w window.Windowed[string], n int64) (string, wire.Row) {
		return w.Key, RowOf(w, w.Key, float64(n))
	}), nil
}

// TableTopics is implemented by an aggregation that reads topics as
// tables: EmoStream creates them, compacted, before the aggregator starts
// when they do not exist.
type TableTopics interface {
	TableTopics() []string
}
