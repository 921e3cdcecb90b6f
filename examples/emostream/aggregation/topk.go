package aggregation

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/window"
)

// TopK ranks the emojis of each window by their count and keeps the k
// first: up to k rows per window when it closes, Rank 1 to k, Label the
// emoji, Value its count, all keyed by the window start (decimal epoch ms)
// so a window's rows are in one partition, in rank order. Equal counts are
// ranked by emoji (byte order). Its name is "top<k>" ("top3").
//
// It is a second aggregation over the contract's counts (Input.Counts): the
// counts are re-keyed by window, go through a repartition topic
// (<application id>-top<k>-repartition) so every count of a window meets in
// one task, and are folded per window into an emoji → count map. Setting
// (not adding) a count makes a repeated count result — after a crash, always
// with the same value — change nothing.
//
// The window closes Input.CountLag after the count's close point
// (window_end + grace + CountLag: 1.5 s after window_end by default, 2.5 s
// with --exactly-once, whose rows are readable when the next transaction
// commits, up to a commit interval later). Its rows are final when every
// count of the window
// got there by then, which is the case unless a count task was down or
// behind: a count that arrives later (an aggregator killed and failed over,
// a backfill with stream time only) is dropped and counted
// (stream_dropped_records_total{reason="late"}), and that window's top-k
// misses it. topic2 stays exact either way.
func TopK(k int) Aggregation { return topK{k: k} }

type topK struct{ k int }

func (t topK) Name() string  { return "top" + strconv.Itoa(t.k) }
func (t topK) Title() string { return fmt.Sprintf("Top %d emojis per window", t.k) }

// emojiCount is a count result on its way to the top-k step.
type emojiCount struct {
	Emoji string `json:"e"`
	Count int64  `json:"n"`
}

func (t topK) Build(in Input) (*stream.Stream[string, wire.Row], error) {
	if t.k < 1 {
		return nil, fmt.Errorf("%w: top-k needs k >= 1, got %d", ErrInvalid, t.k)
	}
	if in.Counts == nil {
		return nil, fmt.Errorf("%w: top-k needs the counts", ErrInvalid)
	}
	byWindow := stream.Map(in.Counts, func(w window.Windowed[string], n int64) (string, emojiCount) {
		return strconv.FormatInt(w.Start.UnixMilli(), 10), emojiCount{Emoji: w.Key, Count: n}
	})
	grouped := stream.GroupByKey(byWindow, stream.Grouped[string, emojiCount]{
		Name: in.Name, KeySerde: stream.String(), ValueSerde: stream.JSON[emojiCount](),
	})
	windows := window.OfSizeAndGrace(in.Windows.Size(), in.Windows.GracePeriod()+in.CountLag)
	counts := window.Aggregate(grouped, windows,
		func() map[string]int64 { return map[string]int64{} },
		func(_ string, c emojiCount, m map[string]int64) map[string]int64 {
			m[c.Emoji] = c.Count
			return m
		},
		stream.JSON[map[string]int64](),
		in.WindowOpts()...)
	return stream.FlatMap(counts, func(w window.Windowed[string], m map[string]int64) []stream.KeyValue[string, wire.Row] {
		ranked := make([]emojiCount, 0, len(m))
		for e, n := range m {
			ranked = append(ranked, emojiCount{Emoji: e, Count: n})
		}
		slices.SortFunc(ranked, func(a, b emojiCount) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Emoji, b.Emoji))
		})
		rows := make([]stream.KeyValue[string, wire.Row], 0, t.k)
		for i, c := range ranked[:min(t.k, len(ranked))] {
			r := RowOf(w, c.Emoji, float64(c.Count))
			r.Rank = i + 1
			rows = append(rows, stream.KeyValue[string, wire.Row]{Key: w.Key, Value: r})
		}
		return rows
	}), nil
}
