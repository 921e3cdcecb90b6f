package window_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
	"github.com/emostream/emostream/pkg/window"
)

// TestReduceMatchesAggregate: a windowed Reduce summing values forwards the
// same results (windows, values, timestamps) as Sum, for every window kind,
// emit strategy and with late records; and its store answers queries like
// any other.
func TestReduceMatchesAggregate(t *testing.T) {
	ms := func(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
	kinds := []struct {
		name string
		w    window.Windows
	}{
		{"tumbling", window.OfSizeAndGrace(ms(1000), ms(300))},
		{"hopping", window.OfSizeAndGrace(ms(1000), ms(300)).AdvanceBy(ms(250))},
		{"session", window.OfInactivityGapAndGrace(ms(200), ms(300))},
		{"sliding", window.OfTimeDifferenceAndGrace(ms(400), ms(300))},
	}
	for _, k := range kinds {
		for _, emit := range []window.EmitStrategy{window.OnWindowUpdate, window.OnWindowClose, window.UntilWindowCloses} {
			t.Run(fmt.Sprintf("%s/%v", k.name, emit), func(t *testing.T) {
				b := stream.NewBuilder()
				src := stream.Source(b, "in", stream.String(), stream.Int64())
				opts := func(name string) []window.Opt {
					return []window.Opt{window.Named(name), window.Emit(emit), window.WallClockClose(false), window.DropLateRecords()}
				}
				sum := func(_ string, a, v int64) int64 { return a + v }
				window.Reduce(stream.GroupByKey(src), k.w, sum, opts("reduce")...).
					To("reduced", window.WindowedSerde(stream.String()), stream.Int64())
				// The first value starts a window: the largest of negative
				// values is negative, never the zero value of int64.
				window.Reduce(stream.GroupByKey(stream.MapValues(src, func(_ string, v int64) int64 { return -v }), stream.Grouped[string, int64]{KeySerde: stream.String(), ValueSerde: stream.Int64()}), k.w,
					func(_ string, a, v int64) int64 { return max(a, v) }, opts("max")...).
					To("max", window.WindowedSerde(stream.String()), stream.Int64())
				if sw, ok := k.w.(window.SessionWindows); ok {
					window.AggregateSessions(stream.GroupByKey(src), sw, func() int64 { return 0 },
						func(_ string, v, a int64) int64 { return a + v }, sum, stream.Int64(), opts("sum")...).
						To("summed", window.WindowedSerde(stream.String()), stream.Int64())
				} else {
					window.Sum(stream.GroupByKey(src), k.w, func(v int64) int64 { return v }, opts("sum")...).
						To("summed", window.WindowedSerde(stream.String()), stream.Int64())
				}
				top, err := b.Build()
				require.NoError(t, err)
				d, err := streamtest.New(top, stream.StartTime(time.UnixMilli(0)))
				require.NoError(t, err)
				defer d.Close()
				in := streamtest.NewInputTopic(d, "in", stream.String(), stream.Int64())
				rng := rand.New(rand.NewPCG(7, 11))
				base := int64(0)
				for range 300 {
					base += rng.Int64N(60)
					ts := max(0, base-rng.Int64N(700))
					require.NoError(t, in.PipeAt([]string{"a", "b", "c"}[rng.IntN(3)], 1+rng.Int64N(9), time.UnixMilli(ts)))
				}
				read := func(topic string) []string {
					recs, err := streamtest.NewOutputTopic(d, topic, window.WindowedSerde(stream.String()), stream.Int64()).ReadRecords()
					require.NoError(t, err)
					var out []string
					for _, r := range recs {
						out = append(out, fmt.Sprintf("%s [%d,%d] %d @%d", r.Key.Key, r.Key.Start.UnixMilli(), r.Key.End.UnixMilli(), r.Value, r.Timestamp.UnixMilli()))
					}
					return out
				}
				maxes := read("max")
				require.NotEmpty(t, maxes)
				for _, m := range maxes {
					require.Contains(t, m, "] -", "a window's largest value is one of its (negative) values: %s", m)
				}
				want := read("summed")
				require.NotEmpty(t, want)
				require.Equal(t, want, read("reduced"))

				q := window.QueryWindowStore[string, int64](d.StoreHost(), "reduce", stream.String())
				got, err := q.FetchAll(time.UnixMilli(0), time.UnixMilli(base+1000))
				require.NoError(t, err)
				wantQ, err := window.QueryWindowStore[string, int64](d.StoreHost(), "sum", stream.String()).FetchAll(time.UnixMilli(0), time.UnixMilli(base+1000))
				require.NoError(t, err)
				require.NotEmpty(t, got)
				require.Equal(t, wantQ, got)
			})
		}
	}
}
