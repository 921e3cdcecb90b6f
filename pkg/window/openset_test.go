package window

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// indexEntries returns the window entries of the aggregation "c"'s index
// store (its close watermark left out), by key and start.
func indexEntries(t *testing.T, d *streamtest.Driver) map[string]int64 {
	t.Helper()
	it, err := stream.QueryStore[[]byte, int64](d.StoreHost(), "c-index", rawSerde{}).All()
	require.NoError(t, err)
	defer it.Close()
	got := map[string]int64{}
	for it.Next() {
		if len(it.Key()) < 16 {
			continue
		}
		kb, start, _, err := decodeIndexKey(it.Key())
		require.NoError(t, err)
		got[string(kb)+"@"+time.UnixMilli(start).UTC().Format("05.000")] = it.Value()
	}
	require.NoError(t, it.Err())
	return got
}

// restartDriver restarts d's tasks: "crash" without a commit (what was
// processed since the last one is processed again), "clean" after one.
func restartDriver(t *testing.T, d *streamtest.Driver, restart string) {
	t.Helper()
	if restart == "crash" {
		require.NoError(t, d.Crash())
		return
	}
	require.NoError(t, d.Commit())
	require.NoError(t, d.Restart())
}

// TestOpenWindowsOnlyInMemory: a time window has no entry in the index
// store (so none in its changelog, which a restore reads), open or closed:
// the close watermark and the epochs' close marks say which windows are
// closed and emitted. After a crash, the restarted task finds the open
// windows in the window store and closes and emits them as if nothing
// happened, and a clean restart does the same.
func TestOpenWindowsOnlyInMemory(t *testing.T) {
	for _, restart := range []string{"crash", "clean"} {
		t.Run(restart, func(t *testing.T) {
			d, in, out := crashDriver(t, lateCountTopology(t, 2*time.Second, OnWindowClose))
			require.NoError(t, in.PipeAt("a", "x", time.UnixMilli(100)))
			require.NoError(t, in.PipeAt("b", "x", time.UnixMilli(200)))
			require.NoError(t, in.PipeAt("a", "x", time.UnixMilli(2300))) // closes [0, 2 s)
			require.Equal(t, []string{"a@0=1", "b@0=1"}, windowResults(t, out))
			require.NoError(t, in.PipeAt("b", "x", time.UnixMilli(2400)))
			require.NoError(t, d.Commit())
			// Closed: a and b at 0 s. Open: a and b at 2 s. None in the index.
			require.Empty(t, indexEntries(t, d))

			require.NoError(t, in.PipeAt("a", "x", time.UnixMilli(2500))) // uncommitted
			restartDriver(t, d, restart)
			require.Empty(t, windowResults(t, out), "nothing is emitted again: the closed windows' emission was committed")
			require.NoError(t, in.PipeAt("c", "x", time.UnixMilli(4100))) // closes [2 s, 4 s)
			require.Equal(t, []string{"a@2000=2", "b@2000=1"}, windowResults(t, out))
			require.Empty(t, lateOffsets(d))
			require.Empty(t, indexEntries(t, d))
		})
	}
}

// TestLargeCloseReadsInOrder: a close of more than loadDueMin windows reads
// their values with one scan of the window store (keys of several lengths,
// so the store's order is not the emission order), and one whose windows
// lie between many retained ones reads them point by point; on both stores,
// every window is emitted once, with its count, in Kafka Streams' order
// (window end, then the serialized key).
func TestLargeCloseReadsInOrder(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		for _, retained := range []int{0, 6} {
			t.Run(fmt.Sprintf("persistent=%v/retained=%d", persistent, retained), func(t *testing.T) {
				b := stream.NewBuilder()
				src := stream.Source(b, "in", stream.String(), stream.String())
				opts := []Opt{Named("c"), Emit(OnWindowClose), DropLateRecords(), Retention(time.Hour)}
				if persistent {
					opts = append(opts, StoreOptions(stream.Persistent()))
				}
				counts := Count(stream.GroupByKey(src), OfSizeAndGrace(time.Second, 0), opts...)
				counts.To("out", WindowedSerde(stream.String()), stream.Int64())
				top, err := b.Build()
				require.NoError(t, err)
				d, err := streamtest.New(top, stream.StartTime(time.UnixMilli(0)), stream.StateDir(t.TempDir()))
				require.NoError(t, err)
				defer d.Close()
				in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
				out := streamtest.NewOutputTopic(d, "out", WindowedSerde(stream.String()), stream.Int64())

				const keys = 1500
				key := func(i int) string { return fmt.Sprintf("k%d", i*7919%keys) } // 2 to 5 bytes
				// retained earlier windows per key, closed and kept (an hour's
				// retention), so the last close's windows lie between them.
				for w := range retained {
					for i := range keys {
						require.NoError(t, in.PipeAt(key(i), "x", time.UnixMilli(int64(w)*1000+500)))
					}
				}
				last := int64(retained) * 1000
				var want []string
				for i := range keys {
					n := 1 + i%3
					for range n {
						require.NoError(t, in.PipeAt(key(i), "x", time.UnixMilli(last+100)))
					}
					want = append(want, fmt.Sprintf("%s@%d=%d", key(i), last, n))
				}
				// Same-start windows: by key bytes.
				slices.SortFunc(want, func(a, b string) int {
					return strings.Compare(a[:strings.IndexByte(a, '@')], b[:strings.IndexByte(b, '@')])
				})
				require.NoError(t, in.PipeAt("zz", "x", time.UnixMilli(last+1000))) // closes the last window
				recs, err := out.ReadRecords()
				require.NoError(t, err)
				var got []string
				for _, r := range recs {
					if r.Key.Start.UnixMilli() == last {
						got = append(got, fmt.Sprintf("%s@%d=%d", r.Key.Key, last, r.Value))
					}
				}
				require.Equal(t, want, got)
				require.Zero(t, d.DroppedRecords()[reasonValueMissing])
			})
		}
	}
}

// TestOldIndexFormatReadAsOpen: index stores written by older versions hold
// an entry for every closed window (its state: the epoch it was emitted
// in), and those written before the open set existed an entry of state
// windowOpen for every open window too. A task that restarts on such a
// store (crash or clean) converts it: each open window is closed and
// emitted once, at its time, with every record it holds, none reported
// late, what was emitted and committed is not emitted again, the old
// entries are gone, and the results are the same as a run that never used
// an old format.
func TestOldIndexFormatReadAsOpen(t *testing.T) {
	const (
		current = iota
		closeEntries
		openEntries
	)
	run := func(t *testing.T, format int, restart string) ([]string, []string) {
		writeOpenEntries, legacyIndexFormat = format == openEntries, format != current
		defer func() { writeOpenEntries, legacyIndexFormat = false, false }()
		d, in, out := crashDriver(t, lateCountTopology(t, 2*time.Second, OnWindowClose))
		var got []string
		require.NoError(t, in.PipeAt("a", "x", time.UnixMilli(100)))
		require.NoError(t, in.PipeAt("b", "x", time.UnixMilli(200)))
		require.NoError(t, in.PipeAt("a", "x", time.UnixMilli(2300))) // closes [0, 2 s)
		require.NoError(t, in.PipeAt("b", "x", time.UnixMilli(2400)))
		require.NoError(t, in.PipeAt("c", "x", time.UnixMilli(3900)))
		require.NoError(t, d.Commit())
		entries := indexEntries(t, d)
		switch format {
		case openEntries:
			require.Equal(t, map[string]int64{"a@02.000": windowOpen, "b@02.000": windowOpen, "c@02.000": windowOpen},
				filterState(entries, windowOpen), "the oldest format: an entry per open window")
			fallthrough
		case closeEntries:
			require.Contains(t, entries, "a@00.000", "an old format: an entry per closed window")
			require.Contains(t, entries, "b@00.000", "an old format: an entry per closed window")
		default:
			require.Empty(t, entries)
		}
		got = append(got, windowResults(t, out)...)
		writeOpenEntries, legacyIndexFormat = false, false            // the restarted task is the current code
		require.NoError(t, in.PipeAt("a", "x", time.UnixMilli(2500))) // uncommitted
		restartDriver(t, d, restart)
		got = append(got, windowResults(t, out)...)
		require.NoError(t, in.PipeAt("b", "x", time.UnixMilli(3950)))
		require.NoError(t, in.PipeAt("d", "x", time.UnixMilli(6100))) // closes [2 s, 4 s) and [4 s, 6 s)
		got = append(got, windowResults(t, out)...)
		require.NoError(t, d.Commit())
		require.Empty(t, indexEntries(t, d), "converted: no window entries left")
		return got, lateOffsets(d)
	}
	for _, restart := range []string{"crash", "clean"} {
		t.Run(restart, func(t *testing.T) {
			want, wantLate := run(t, current, restart)
			require.Equal(t, []string{"a@0=1", "b@0=1", "a@2000=2", "b@2000=2", "c@2000=1"}, want)
			require.Empty(t, wantLate)
			for _, format := range []int{closeEntries, openEntries} {
				got, late := run(t, format, restart)
				require.Equal(t, want, got, "old index format %d after a %s", format, restart)
				require.Empty(t, late)
			}
		})
	}
}

func filterState(entries map[string]int64, state int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range entries {
		if v == state {
			out[k] = v
		}
	}
	return out
}

// TestOldIndexFormatReemitsUncommitted: a close whose changelog writes
// arrived but whose commit did not is emitted again after the crash, once,
// whether the store was written in an old index format (the window's entry
// carries the uncommitted epoch) or the current one (the epoch's close mark
// was not committed); a close that was committed is not.
func TestOldIndexFormatReemitsUncommitted(t *testing.T) {
	run := func(t *testing.T, legacy, openEntries bool) []string {
		writeOpenEntries, legacyIndexFormat = openEntries, legacy
		defer func() { writeOpenEntries, legacyIndexFormat = false, false }()
		// No record cache: every store write reaches its changelog at once.
		d, in, out := crashDriver(t, lateCountTopology(t, 2*time.Second, OnWindowClose), stream.CacheMaxBytes(0))
		var got []string
		require.NoError(t, in.PipeAt("a", "x", time.UnixMilli(100)))
		require.NoError(t, in.PipeAt("b", "x", time.UnixMilli(2100))) // closes [0, 2 s)
		require.NoError(t, d.Commit())
		require.NoError(t, in.PipeAt("a", "x", time.UnixMilli(2200)))
		require.NoError(t, in.PipeAt("b", "x", time.UnixMilli(4100))) // closes [2 s, 4 s), not committed
		got = append(got, windowResults(t, out)...)
		writeOpenEntries, legacyIndexFormat = false, false
		require.NoError(t, d.Crash())
		require.NoError(t, in.PipeAt("c", "x", time.UnixMilli(6100))) // closes [4 s, 6 s)
		got = append(got, windowResults(t, out)...)
		require.Empty(t, lateOffsets(d))
		require.NoError(t, d.Commit())
		require.Empty(t, indexEntries(t, d), "no window entries left")
		return got
	}
	want := []string{"a@0=1", "a@2000=1", "b@2000=1", "a@2000=1", "b@2000=1", "b@4000=1"}
	require.Equal(t, want, run(t, false, false), "current format")
	require.Equal(t, want, run(t, true, false), "close entries")
	require.Equal(t, want, run(t, true, true), "open and close entries")
}
