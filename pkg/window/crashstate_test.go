package window

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// indexEraser deletes, for each control record, the index entry of the
// window [0, 2 s) of the record's key: what a crash leaves when the window's
// value reached the store's changelog but its index entry did not (the
// record cache had sent the store's writes and still held the index's).
type indexEraser struct {
	index stream.KeyValueStore[[]byte, int64]
}

func (e *indexEraser) Init(ctx stream.ProcessorContext[string, string]) error {
	var err error
	e.index, err = stream.GetKeyValueStore[[]byte, int64](ctx, "c-index")
	return err
}

func (e *indexEraser) Process(_ stream.ProcessorContext[string, string], rec stream.Record[string, string]) error {
	return e.index.Delete(indexKey([]byte(rec.Key), 0, 2000))
}

func (e *indexEraser) Close() error { return nil }

// TestRedeliveryRestoresLostIndexEntry: after a crash that kept a window's
// value but lost its index entry, the redelivered input (which the store
// recognises as applied) puts the entry back, so the window's final result
// is still emitted — once, with the right count. Without that the result
// was lost (make smoke CLUSTER=3 saw it after an aggregator SIGKILL).
func TestRedeliveryRestoresLostIndexEntry(t *testing.T) {
	for _, emit := range []EmitStrategy{OnWindowClose, UntilWindowCloses} {
		t.Run(emit.String(), func(t *testing.T) {
			b := stream.NewBuilder()
			src := stream.Source(b, "in", stream.String(), stream.String())
			counts := Count(stream.GroupByKey(src), OfSizeAndGrace(2*time.Second, 0), Named("c"), Emit(emit), DropLateRecords())
			counts.To("out", WindowedSerde(stream.String()), stream.Int64())
			ctl := stream.Source(b, "ctl", stream.String(), stream.String())
			stream.Process(ctl, "erase", func() stream.Processor[string, string, string, string] { return &indexEraser{} }, "c-index")
			top, err := b.Build()
			require.NoError(t, err)
			d, err := streamtest.New(top, stream.StartTime(time.UnixMilli(0)))
			require.NoError(t, err)
			defer d.Close()
			in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
			ctlIn := streamtest.NewInputTopic(d, "ctl", stream.String(), stream.String())
			out := streamtest.NewOutputTopic(d, "out", WindowedSerde(stream.String()), stream.Int64())

			require.NoError(t, in.PipeAt("a", "x", time.UnixMilli(100)))
			require.NoError(t, in.PipeAt("a", "x", time.UnixMilli(900)))
			require.NoError(t, ctlIn.PipeAt("a", "", time.UnixMilli(900)))
			// The crash: the uncommitted input comes again, as Kafka redelivers it.
			require.NoError(t, d.Redeliver("in", 0, 0))
			// Stream time passes the window's end: it closes.
			require.NoError(t, in.PipeAt("b", "x", time.UnixMilli(5000)))

			recs, err := out.ReadRecords()
			require.NoError(t, err)
			var got []string
			for _, r := range recs {
				got = append(got, r.Key.Key+"="+strconv.FormatInt(r.Value, 10))
			}
			require.Equal(t, []string{"a=2"}, got, "the window of a is emitted once, with both records")
			require.Zero(t, d.DroppedRecords()[reasonValueMissing])
		})
	}
}
