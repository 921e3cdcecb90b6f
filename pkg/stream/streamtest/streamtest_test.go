package streamtest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// probeLog records what the probe processors of one topology saw, per task.
type probeLog struct {
	inits, closes  map[stream.TaskID]int
	initCommitted  map[stream.TaskID][]uint64
	initStreamTime map[stream.TaskID][]time.Time
	closeCommitted map[stream.TaskID][]uint64
	// committed is CommittedEpoch while processing each record, used the
	// epoch CommitEpoch returned for each "use" record.
	committed []uint64
	used      []uint64
	keyTask   map[string]stream.TaskID
}

func newProbeLog() *probeLog {
	return &probeLog{
		inits: map[stream.TaskID]int{}, closes: map[stream.TaskID]int{},
		initCommitted: map[stream.TaskID][]uint64{}, initStreamTime: map[stream.TaskID][]time.Time{},
		closeCommitted: map[stream.TaskID][]uint64{}, keyTask: map[string]stream.TaskID{},
	}
}

// probe acts on the record value: "use" takes the commit epoch, "drop"
// counts a dropped record, "dlq" sends the record to the topic "dead".
type probe struct {
	log *probeLog
	ctx stream.ProcessorContext[string, string]
}

func (p *probe) Init(ctx stream.ProcessorContext[string, string]) error {
	p.ctx = ctx
	id := ctx.TaskID()
	p.log.inits[id]++
	p.log.initCommitted[id] = append(p.log.initCommitted[id], ctx.CommittedEpoch())
	p.log.initStreamTime[id] = append(p.log.initStreamTime[id], ctx.StreamTime())
	return nil
}

func (p *probe) Process(ctx stream.ProcessorContext[string, string], rec stream.Record[string, string]) error {
	p.log.committed = append(p.log.committed, ctx.CommittedEpoch())
	p.log.keyTask[rec.Key] = ctx.TaskID()
	switch rec.Value {
	case "use":
		p.log.used = append(p.log.used, ctx.CommitEpoch())
	case "drop":
		ctx.RecordDropped("late")
	case "dlq":
		return ctx.DeadLetter("dead", "late")
	}
	return nil
}

func (p *probe) Close() error {
	id := p.ctx.TaskID()
	p.log.closes[id]++
	p.log.closeCommitted[id] = append(p.log.closeCommitted[id], p.ctx.CommittedEpoch())
	return nil
}

// probeTopology counts records per key into the store "counts" (written to
// "out") and runs a probe on every record.
func probeTopology(t *testing.T, log *probeLog) *stream.Topology {
	t.Helper()
	b := stream.NewBuilder()
	src := stream.Source(b, "in", stream.String(), stream.String())
	stream.Process(src, "probe", func() stream.Processor[string, string, string, string] { return &probe{log: log} })
	stream.Count(stream.GroupByKey(src), stream.Materialized[string, int64]{StoreName: "counts"}).
		ToStream().To("out", stream.String(), stream.Int64())
	top, err := b.Build()
	require.NoError(t, err)
	return top
}

func TestCommitEpochAdvancesOnlyWhenUsed(t *testing.T) {
	log := newProbeLog()
	d, err := streamtest.New(probeTopology(t, log))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	t0 := time.UnixMilli(1_700_000_000_000)
	steps := []struct {
		value     string
		ts        time.Time
		committed uint64 // CommittedEpoch while the record is processed
	}{
		{"use", t0, 0},                    // epoch 1 used, committed after the pipe
		{"peek", t0, 1},                   // nothing used, same stream time: no new epoch
		{"peek", t0, 1},                   //
		{"use", t0, 1},                    // epoch 2 used
		{"peek", t0.Add(time.Second), 2},  // stream time moves: epoch 3 committed
		{"peek", t0, 3},                   // an older record: nothing moves
		{"use", t0.Add(time.Second), 3},   // epoch 4
		{"peek", t0.Add(time.Second), 4},  //
		{"peek", t0.Add(-time.Second), 4}, //
	}
	for _, s := range steps {
		require.NoError(t, in.PipeAt("a", s.value, s.ts))
	}
	want := make([]uint64, len(steps))
	for i, s := range steps {
		want[i] = s.committed
	}
	require.Equal(t, want, log.committed)
	require.Equal(t, []uint64{1, 2, 4}, log.used)

	// Neither the wall clock nor a restart with nothing new moves the epoch.
	require.NoError(t, d.AdvanceWallClock(time.Hour))
	require.NoError(t, d.Restart())
	id := stream.TaskID{}
	require.Equal(t, []uint64{0, 4}, log.initCommitted[id])
	require.NoError(t, d.Restart())
	require.Equal(t, []uint64{0, 4, 4}, log.initCommitted[id])
	require.NoError(t, in.PipeAt("a", "use", t0))
	require.Equal(t, []uint64{1, 2, 4, 5}, log.used, "the first epoch after a restart is CommittedEpoch+1")
}

func TestDriverRestartKeepsStoresAndRerunsInit(t *testing.T) {
	log := newProbeLog()
	d, err := streamtest.New(probeTopology(t, log), stream.Partitions(2))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	out := streamtest.NewOutputTopic(d, "out", stream.String(), stream.Int64())
	counts := streamtest.KeyValueStore[string, int64](d, "counts", stream.String())
	t0 := time.UnixMilli(1_700_000_000_000)
	keys := []string{"a", "b", "c", "d", "e", "f"}
	for i, k := range keys {
		for j := 0; j <= i; j++ {
			require.NoError(t, in.PipeAt(k, "use", t0.Add(time.Duration(i*10+j)*time.Millisecond)))
		}
	}
	read, err := out.ReadKeyValues()
	require.NoError(t, err)
	require.Len(t, read, 21)
	require.NoError(t, in.PipeAt("a", "x", t0)) // not read before the restart

	// Stream time and the committed epoch per task, as the tasks will see
	// them after the restart.
	wantST := map[stream.TaskID]time.Time{}
	for i, k := range keys {
		id := log.keyTask[k]
		if ts := t0.Add(time.Duration(i*10+i) * time.Millisecond); ts.After(wantST[id]) {
			wantST[id] = ts
		}
	}
	require.Len(t, wantST, 2, "keys on both partitions")

	require.NoError(t, d.Restart())
	for id, st := range wantST {
		require.Equal(t, 2, log.inits[id], "Init runs again on %v", id)
		require.Equal(t, 1, log.closes[id], "Close ran on %v", id)
		require.Zero(t, log.initCommitted[id][0])
		require.Positive(t, log.closeCommitted[id][0])
		require.Equal(t, log.closeCommitted[id][0], log.initCommitted[id][1], "committed epoch carried over on %v", id)
		require.True(t, log.initStreamTime[id][0].IsZero())
		require.True(t, st.Equal(log.initStreamTime[id][1]), "stream time of %v: %v, want %v", id, log.initStreamTime[id][1], st)
	}

	// Output already read stays read; what was not read is still there.
	rest, err := out.ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []stream.KeyValue[string, int64]{{Key: "a", Value: 2}}, rest)

	// The stores kept their contents.
	for i, k := range keys {
		want := int64(i + 1)
		if k == "a" {
			want = 2
		}
		got, found, err := counts.Get(k)
		require.NoError(t, err)
		require.True(t, found, k)
		require.Equal(t, want, got, k)
	}

	// Counting goes on, and inputs piped before the restart can still be
	// redelivered: they were applied already and do not count twice.
	require.NoError(t, in.PipeAt("f", "x", t0))
	got, _, err := counts.Get("f")
	require.NoError(t, err)
	require.Equal(t, int64(7), got)
	for p := int32(0); p < 2; p++ {
		require.NoError(t, d.Redeliver("in", p, 0))
	}
	for i, k := range keys {
		want := int64(i + 1)
		switch k {
		case "a":
			want = 2
		case "f":
			want = 7
		}
		got, _, err := counts.Get(k)
		require.NoError(t, err)
		require.Equal(t, want, got, k)
	}
}

func TestDriverDroppedRecordsAndDeadLetters(t *testing.T) {
	log := newProbeLog()
	d, err := streamtest.New(probeTopology(t, log))
	require.NoError(t, err)
	defer d.Close()
	require.Empty(t, d.DroppedRecords())
	require.Empty(t, d.DeadLetters())
	in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	for _, v := range []string{"drop", "x", "dlq", "drop"} {
		require.NoError(t, in.Pipe("k", v))
	}
	require.Equal(t, map[string]int64{"late": 2}, d.DroppedRecords())
	require.Equal(t, map[string]int64{"late": 1}, d.DeadLetters())

	// Counted since the driver was created, across restarts.
	require.NoError(t, d.Restart())
	require.NoError(t, in.Pipe("k", "drop"))
	require.NoError(t, in.Pipe("k", "dlq"))
	require.Equal(t, map[string]int64{"late": 3}, d.DroppedRecords())
	require.Equal(t, map[string]int64{"late": 2}, d.DeadLetters())
	dead := d.RawOutput("dead")
	require.Len(t, dead, 2)
	require.Equal(t, "dlq", string(dead[0].Value))
}

// TestDriverCrashLosesUncommittedState: with CommitManually, a crash keeps
// what the changelogs received (a commit, or a processor's FlushStores),
// loses the rest, restarts the tasks from the last commit, and processes
// the input after the committed offsets again — so counts end up exact, and
// outputs written before the crash stay.
func TestDriverCrashLosesUncommittedState(t *testing.T) {
	b := stream.NewBuilder()
	src := stream.Source(b, "in", stream.String(), stream.String())
	// Without dedup, a replay over state that kept the lost writes would
	// count them twice: the counts tell whether the crash lost them.
	counts := stream.Count(stream.GroupByKey(src), stream.Materialized[string, int64]{
		StoreName: "counts", KeySerde: stream.String(), ValueSerde: stream.Int64(), Options: []stream.StoreOpt{stream.WithoutDedup()}})
	counts.ToStream().To("out", stream.String(), stream.Int64())
	top, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(top, stream.Partitions(2))
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, d.CommitManually())
	in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	out := streamtest.NewOutputTopic(d, "out", stream.String(), stream.Int64())
	store := streamtest.KeyValueStore[string, int64](d, "counts", stream.String())
	get := func(k string) int64 {
		v, _, err := store.Get(k)
		require.NoError(t, err)
		return v
	}

	for range 3 {
		require.NoError(t, in.Pipe("a", "x"))
	}
	require.NoError(t, in.Pipe("b", "x"))
	require.NoError(t, d.Commit())
	require.NoError(t, in.Pipe("a", "x"))
	require.NoError(t, in.Pipe("b", "x"))
	require.Equal(t, int64(4), get("a"))
	before, err := out.ReadKeyValues()
	require.NoError(t, err)
	require.Len(t, before, 6)

	require.NoError(t, d.Crash())
	// The two uncommitted records were processed again over the committed
	// state: nothing lost, nothing counted twice; their outputs repeat.
	require.Equal(t, int64(4), get("a"))
	require.Equal(t, int64(2), get("b"))
	after, err := out.ReadKeyValues()
	require.NoError(t, err)
	require.ElementsMatch(t, []stream.KeyValue[string, int64]{{Key: "a", Value: 4}, {Key: "b", Value: 2}}, after)

	// A crash right after another crash changes nothing.
	require.NoError(t, d.Crash())
	require.Equal(t, int64(4), get("a"))
	require.Equal(t, int64(2), get("b"))
}
