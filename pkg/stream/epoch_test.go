package stream

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCommitMetaRoundTrip(t *testing.T) {
	st := time.UnixMilli(1700000000123)
	for _, tc := range []struct {
		name  string
		epoch uint64
		st    time.Time
		want  string
	}{
		{"epoch and stream time", 12, st, "stream/v1 epoch=12 st=1700000000123"},
		{"no record yet", 3, time.Time{}, "stream/v1 epoch=3"},
		{"nothing committed", 0, time.Time{}, "stream/v1 epoch=0"},
		{"before 1970", 1, time.UnixMilli(-5), "stream/v1 epoch=1 st=-5"},
		{"largest epoch", ^uint64(0), st, "stream/v1 epoch=18446744073709551615 st=1700000000123"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta := encodeCommitMeta(tc.epoch, tc.st)
			require.Equal(t, tc.want, meta)
			epoch, gotST := parseCommitMeta(meta)
			require.Equal(t, tc.epoch, epoch)
			require.True(t, tc.st.Equal(gotST), "stream time %v, want %v", gotST, tc.st)
		})
	}
}

func TestCommitMetaSubMillisecondStreamTime(t *testing.T) {
	// Kafka timestamps are milliseconds; the metadata keeps milliseconds.
	_, st := parseCommitMeta(encodeCommitMeta(1, time.Unix(10, 999_999)))
	require.Equal(t, int64(10_000), st.UnixMilli())
}

func TestParseForeignCommitMeta(t *testing.T) {
	for _, tc := range []struct {
		meta  string
		epoch uint64
		st    int64 // unix ms; 0: unknown
	}{
		{"", 0, 0},
		{"some other client", 0, 0},
		{"stream/v2 epoch=7 st=5", 0, 0},
		{"stream/v1", 0, 0},
		{"stream/v1 st=5", 0, 0},
		{"stream/v1 epoch=x st=5", 0, 0},
		{"stream/v1 epoch=-1", 0, 0},
		{"stream/v1 epoch=7 st=x", 7, 0},
		{"stream/v1 epoch=7 st=5 future=1 flag", 7, 5},
		{"stream/v1  st=5   epoch=7 ", 7, 5},
		{"stream/v1epoch=7", 0, 0},
	} {
		t.Run(tc.meta, func(t *testing.T) {
			epoch, st := parseCommitMeta(tc.meta)
			require.Equal(t, tc.epoch, epoch)
			if tc.st == 0 {
				require.True(t, st.IsZero(), "stream time %v", st)
			} else {
				require.Equal(t, tc.st, st.UnixMilli())
			}
		})
	}
}

func TestTaskStartResolve(t *testing.T) {
	meta := func(e uint64, ms int64) committedPosition {
		var st time.Time
		if ms != 0 {
			st = time.UnixMilli(ms)
		}
		return committedPosition{offset: 10, meta: encodeCommitMeta(e, st)}
	}
	for _, tc := range []struct {
		name      string
		committed map[string]committedPosition
		epoch     uint64
		st        int64
	}{
		{"no commit", nil, 0, 0},
		{"one partition", map[string]committedPosition{"a": meta(4, 100)}, 4, 100},
		{"minimum over partitions", map[string]committedPosition{"a": meta(4, 100), "b": meta(3, 200)}, 3, 100},
		{"a partition without commit", map[string]committedPosition{"a": meta(4, 100)}, 0, 0},
		{"a partition with other metadata", map[string]committedPosition{"a": meta(4, 100), "b": {offset: 3, meta: "x"}}, 0, 0},
		{"a partition without stream time", map[string]committedPosition{"a": meta(4, 100), "b": meta(5, 0)}, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topics := []string{"a", "b"}
			if tc.name == "one partition" {
				topics = topics[:1]
			}
			epoch, st := taskStart{committed: tc.committed}.resolve(topics)
			require.Equal(t, tc.epoch, epoch)
			if tc.st == 0 {
				require.True(t, st.IsZero())
			} else {
				require.Equal(t, tc.st, st.UnixMilli())
			}
		})
	}
}

func TestEpochAdvancesOnlyWhenUsedOrStreamTimeMoves(t *testing.T) {
	tk := &task{epoch: epochState{current: 5, committed: 4, st: time.UnixMilli(100)}, streamTime: time.UnixMilli(100)}
	require.False(t, tk.needsCommit(), "nothing happened")
	meta, e, adv := tk.commitMeta()
	require.Equal(t, "stream/v1 epoch=4 st=100", meta, "an unneeded commit repeats the committed metadata")
	require.Equal(t, uint64(4), e)
	require.False(t, adv)

	tk.epoch.used = true
	meta, e, adv = tk.commitMeta()
	require.Equal(t, "stream/v1 epoch=5 st=100", meta)
	require.True(t, adv)
	// At-least-once: the epoch advances when the commit is sent ...
	tk.advanceEpoch(e)
	require.Equal(t, uint64(6), tk.epoch.current)
	require.False(t, tk.epoch.used)
	require.Equal(t, uint64(4), tk.epoch.committed)
	// ... and if the commit fails, the next one must record a new epoch
	// although nothing used the current one.
	require.True(t, tk.needsCommit())
	tk.epochCommitted(e, time.UnixMilli(100))
	require.Equal(t, uint64(5), tk.epoch.committed)
	require.Equal(t, uint64(6), tk.epoch.current)
	require.False(t, tk.needsCommit())

	tk.streamTime = time.UnixMilli(101)
	require.True(t, tk.needsCommit(), "stream time moved")
	_, e, adv = tk.commitMeta()
	require.True(t, adv)
	tk.epochCommitted(e, tk.streamTime)
	require.Equal(t, uint64(6), tk.epoch.committed)
	require.Equal(t, uint64(7), tk.epoch.current)

	// A late confirmation of an older commit changes nothing.
	tk.epochCommitted(5, time.UnixMilli(100))
	require.Equal(t, uint64(6), tk.epoch.committed)
	require.Equal(t, uint64(7), tk.epoch.current)
	require.Equal(t, int64(101), tk.epoch.st.UnixMilli())
}

// tickProbe uses the commit epoch in a wall-clock punctuation and on every
// record.
type tickProbe struct {
	ctx  ProcessorContext[string, string]
	uses *int
}

func (p *tickProbe) Init(ctx ProcessorContext[string, string]) error {
	p.ctx = ctx
	ctx.Schedule(time.Second, WallClockTime, func(time.Time) error {
		ctx.CommitEpoch()
		*p.uses++
		return nil
	})
	return nil
}

func (p *tickProbe) Process(ctx ProcessorContext[string, string], _ Record[string, string]) error {
	ctx.CommitEpoch()
	*p.uses++
	return nil
}

func (p *tickProbe) Close() error { return nil }

// TestClosingTaskDoesNothing: once a task is marked closing (before the last
// commit of a hand-over) it neither processes nor punctuates, so nothing is
// stamped with an epoch that commit does not cover.
func TestClosingTaskDoesNothing(t *testing.T) {
	uses := 0
	b := NewBuilder()
	Process(Source(b, "in", String(), String()), "probe", func() Processor[string, string, string, string] { return &tickProbe{uses: &uses} })
	top, err := b.Build()
	require.NoError(t, err)
	l, err := NewLocalRunner(top)
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.Pipe("in", []byte("k"), []byte("v"), time.UnixMilli(1), nil))
	require.NoError(t, l.AdvanceWallClock(time.Second))
	require.Equal(t, 2, uses)
	tk := l.tasks[TaskID{}]
	require.Equal(t, uint64(2), tk.epoch.committed, "the record used epoch 1, the punctuation epoch 2")

	tk.mu.Lock()
	tk.closing = true
	tk.mu.Unlock()
	require.NoError(t, l.Pipe("in", []byte("k"), []byte("v"), time.UnixMilli(2), nil))
	require.NoError(t, l.AdvanceWallClock(time.Second))
	require.Equal(t, 2, uses, "a closing task does nothing")
	require.Equal(t, uint64(2), tk.epoch.committed)
	require.Equal(t, uint64(3), tk.epoch.current)
	require.Equal(t, int64(1), tk.streamTime.UnixMilli())
}
