package window_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
	"github.com/emostream/emostream/pkg/window"
)

func benchDriver(b *testing.B, emit window.EmitStrategy) (*streamtest.Driver, *streamtest.InputTopic[string, string]) {
	sb := stream.NewBuilder()
	src := stream.Source(sb, "in", stream.String(), stream.String())
	window.Count(stream.GroupByKey(src), window.OfSizeAndGrace(2*time.Second, 500*time.Millisecond),
		window.Emit(emit), window.DropLateRecords(), window.Named("c")).
		To("out", window.WindowedSerde(stream.String()), stream.Int64())
	top, err := sb.Build()
	require.NoError(b, err)
	d, err := streamtest.New(top, stream.StartTime(time.UnixMilli(0)))
	require.NoError(b, err)
	b.Cleanup(func() { d.Close() })
	return d, streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
}

// BenchmarkTumblingCount: records/s of a 2 s tumbling count with emit-final,
// event time advancing 1 ms per record, in memory (no broker).
func BenchmarkTumblingCount(b *testing.B) {
	for _, keys := range []int{16, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
			d, in := benchDriver(b, window.OnWindowClose)
			names := make([]string, keys)
			for i := range names {
				names[i] = fmt.Sprintf("key-%d", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := in.PipeAt(names[i%keys], "", time.UnixMilli(int64(i))); err != nil {
					b.Fatal(err)
				}
				if i%4096 == 0 {
					d.RawOutput("out")
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkCloseWindows measures wall-clock closing with 100k keys: "due"
// closes one open window per key (cost per window emitted), "idle" is a tick
// when nothing is due, which must not depend on the number of keys.
func BenchmarkCloseWindows(b *testing.B) {
	const keys = 100_000
	b.Run("due", func(b *testing.B) {
		b.StopTimer()
		var closed int
		for i := 0; i < b.N; i++ {
			d, in := benchDriver(b, window.OnWindowClose)
			base := int64(i) * 10_000
			for k := range keys {
				require.NoError(b, in.PipeAt(fmt.Sprintf("key-%d", k), "", time.UnixMilli(base+100)))
			}
			b.StartTimer()
			require.NoError(b, d.AdvanceWallClock(time.Duration(base+3000)*time.Millisecond-time.Duration(d.WallClock().UnixMilli())*time.Millisecond))
			b.StopTimer()
			closed += len(d.RawOutput("out"))
		}
		require.Equal(b, keys*b.N, closed)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(closed), "ns/window")
	})
	b.Run("idle", func(b *testing.B) {
		d, in := benchDriver(b, window.OnWindowClose)
		for k := range keys {
			require.NoError(b, in.PipeAt(fmt.Sprintf("key-%d", k), "", time.UnixMilli(1_000_000_000)))
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			require.NoError(b, d.AdvanceWallClock(100*time.Millisecond))
		}
		require.Empty(b, d.RawOutput("out"))
	})
}
