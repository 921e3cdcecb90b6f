package window_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The reproductions, as plain Go tests (no JVM): Kafka Streams
// 4.4.0's answers, taken from the harness in testdata/kstreams-ref (see
// TestMatchesKafkaStreams), are literals here. Each runs our windowed count
// through streamtest with grace 0 (unless noted) and WallClockClose(false),
// and checks after every record the results (key, window, value and output
// timestamp, as "KEY START END VALUE TS"), the aggregator calls, and the
// records dropped or dead-lettered.

// reproStep is one input record and what it must cause.
type reproStep struct {
	pipe    string   // "KEY@TS"
	restart bool     // restart our driver (Driver.Restart) after the record
	want    []string // Kafka Streams' results, "KEY START END VALUE TS"
	aggs    int64    // aggregator calls (Kafka Streams')
	// dropped: records dropped or dead-lettered by ours. Equal to the
	// change of Kafka's dropped-records-total, except where noted.
	dropped int64
}

// runRepro pipes steps through ours, configured as c (window kind, size,
// emit, late handling, tombstones), and compares every step.
func runRepro(t *testing.T, c refCase, steps []reproStep) {
	t.Helper()
	c.recs = nil
	for _, s := range steps {
		at := strings.LastIndexByte(s.pipe, '@')
		ts, err := strconv.ParseInt(s.pipe[at+1:], 10, 64)
		if err != nil {
			t.Fatalf("bad pipe %q", s.pipe)
		}
		c.recs = append(c.recs, refInput{refRecord{s.pipe[:at], ts}, s.restart})
	}
	got, err := runOursForRef(c)
	var report strings.Builder
	failed := false
	for i, s := range steps {
		if i >= len(got) {
			fmt.Fprintf(&report, "≠ pipe %s: ours failed: %v\n", s.pipe, err)
			failed = true
			break
		}
		g := got[i]
		var diffs []string
		if !slices.Equal(g.lines, s.want) {
			diffs = append(diffs, fmt.Sprintf("results: want %s, ours %s", showRefLines(s.want), showRefLines(g.lines)))
		}
		if g.aggs != s.aggs {
			diffs = append(diffs, fmt.Sprintf("aggregator calls: want %d, ours %d", s.aggs, g.aggs))
		}
		if g.dropped != s.dropped {
			diffs = append(diffs, fmt.Sprintf("dropped or dead-lettered: want %d, ours %d", s.dropped, g.dropped))
		}
		mark := "  "
		if len(diffs) > 0 {
			mark = "≠ "
		}
		r := ""
		if s.restart {
			r = " (then restart)"
		}
		fmt.Fprintf(&report, "%spipe %s%s -> ours: %s (dropped=%d aggs=%d)\n", mark, s.pipe, r, showRefLines(g.lines), g.dropped, g.aggs)
		for _, d := range diffs {
			fmt.Fprintf(&report, "      %s\n", d)
		}
		failed = failed || len(diffs) > 0
	}
	if failed {
		t.Errorf("differs from Kafka Streams 4.4.0 (%s):\n%s", c.config(), report.String())
	}
}

func lateVariants(t *testing.T, f func(t *testing.T, dropLate bool)) {
	t.Run("LateRecordsTo", func(t *testing.T) { f(t, false) })
	t.Run("DropLateRecords", func(t *testing.T) { f(t, true) })
}

// A window's result carries the largest timestamp of its records (Kafka
// Streams' ValueAndTimestamp), not the timestamp of the record that updated
// it last.
func TestReproTumblingUpdateTimestamp(t *testing.T) {
	runRepro(t, refCase{kind: "tumbling", size: 500, advance: 500, emit: "update"}, []reproStep{
		{pipe: "k@550", want: []string{"k 500 1000 1 550"}, aggs: 1},
		{pipe: "k@500", want: []string{"k 500 1000 2 550"}, aggs: 1},
	})
}

// A final result carries the window's largest record timestamp, not the
// timestamp of the record that closed it.
func TestReproTumblingCloseTimestamp(t *testing.T) {
	for _, emit := range []string{"close", "suppress"} {
		t.Run(emit, func(t *testing.T) {
			runRepro(t, refCase{kind: "tumbling", size: 500, advance: 500, emit: emit}, []reproStep{
				{pipe: "k@10", aggs: 1},
				{pipe: "k@15", aggs: 1},
				{pipe: "k@500", want: []string{"k 0 500 2 15"}, aggs: 1},
			})
		})
	}
}

// A session's result carries its end, the largest timestamp of its records;
// with tombstones, the replaced session's null comes first.
func TestReproSessionUpdateTimestamp(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		runRepro(t, refCase{kind: "session", gap: 500, emit: "update"}, []reproStep{
			{pipe: "k@600", want: []string{"k 600 600 1 600"}, aggs: 1},
			{pipe: "k@599", want: []string{"k 599 600 2 600"}, aggs: 1},
		})
	})
	t.Run("tombstones", func(t *testing.T) {
		runRepro(t, refCase{kind: "session", gap: 500, emit: "update", tombstones: true}, []reproStep{
			{pipe: "k@600", want: []string{"k 600 600 1 600"}, aggs: 1},
			{pipe: "k@599", want: []string{"k 600 600 null 600", "k 599 600 2 600"}, aggs: 1},
		})
	})
}

// Sliding windows: a window created from a neighbour carries the neighbour's
// timestamp ([104,114] gets 105 from [95,105]), not the record's.
func TestReproSlidingTimestamp(t *testing.T) {
	runRepro(t, refCase{kind: "sliding", diff: 10, emit: "update"}, []reproStep{
		{pipe: "k@100", want: []string{"k 90 100 1 100"}, aggs: 1},
		{pipe: "k@105", want: []string{"k 101 111 1 105", "k 95 105 2 105"}, aggs: 2},
		// Kafka Streams also counts 1 dropped here, for the record's closed
		// left window [93,103]; the record is aggregated, so ours counts 0.
		{pipe: "k@103", want: []string{"k 101 111 2 105", "k 95 105 3 105", "k 104 114 1 105"}, aggs: 2},
	})
}

// Sliding windows: a record that is not late by ts + diff but whose windows
// are all closed is aggregated nowhere; Kafka Streams counts it dropped, so
// ours must drop or dead-letter it, not lose it silently.
func TestReproSlidingSilentDrops(t *testing.T) {
	lateVariants(t, func(t *testing.T, dropLate bool) {
		t.Run("diff4-grace6", func(t *testing.T) {
			runRepro(t, refCase{kind: "sliding", diff: 4, grace: 6, emit: "update", dropLate: dropLate}, []reproStep{
				{pipe: "b@29", want: []string{"b 25 29 1 29"}, aggs: 1},
				{pipe: "a@20", dropped: 1},
			})
		})
		t.Run("diff10-grace0", func(t *testing.T) {
			runRepro(t, refCase{kind: "sliding", diff: 10, emit: "update", dropLate: dropLate}, []reproStep{
				{pipe: "a@100", want: []string{"a 90 100 1 100"}, aggs: 1},
				{pipe: "b@95", dropped: 1},
			})
		})
	})
}

// Sessions close when stream time passes end + gap + grace: with
// emitStrategy(onWindowClose), a[0,0] (gap 10) is final once stream time is
// 11, not at 10, where a record at 0..10 could still join it. Kafka's
// suppress(untilWindowCloses) emits it at 10 already.
func TestReproSessionClosePoint(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		runRepro(t, refCase{kind: "session", gap: 10, emit: "close"}, []reproStep{
			{pipe: "a@0", aggs: 1},
			{pipe: "b@10", aggs: 1},
			{pipe: "b@11", want: []string{"a 0 0 1 0"}, aggs: 1},
		})
	})
	t.Run("suppress", func(t *testing.T) {
		runRepro(t, refCase{kind: "session", gap: 10, emit: "suppress"}, []reproStep{
			{pipe: "a@0", aggs: 1},
			{pipe: "b@10", want: []string{"a 0 0 1 0"}, aggs: 1},
			{pipe: "b@11", aggs: 1},
		})
	})
}

// A negative timestamp belongs to no window: Kafka Streams drops the record
// at the source and counts it in dropped-records-total; ours must aggregate
// it nowhere and drop or dead-letter it, counted.
func TestReproNegativeTimestamps(t *testing.T) {
	lateVariants(t, func(t *testing.T, dropLate bool) {
		for _, c := range []refCase{
			{kind: "tumbling", size: 500, advance: 500},
			{kind: "hopping", size: 500, advance: 100},
			{kind: "session", gap: 10},
			{kind: "sliding", diff: 10},
		} {
			t.Run(c.kind, func(t *testing.T) {
				c.emit, c.dropLate = "update", dropLate
				runRepro(t, c, []reproStep{{pipe: "b@-2", dropped: 1}})
			})
		}
	})
	// Stream time is untouched by the dropped record.
	runRepro(t, refCase{kind: "tumbling", size: 500, advance: 500, emit: "close"}, []reproStep{
		{pipe: "b@-2", dropped: 1},
		{pipe: "b@3", aggs: 1},
		{pipe: "b@500", want: []string{"b 0 500 1 3"}, aggs: 1},
	})
}

// A clean restart between records changes nothing: no final result is
// emitted again, later ones come once with the same timestamps.
func TestReproRestartEmitsNoRepeat(t *testing.T) {
	for _, emit := range []string{"close", "suppress"} {
		t.Run("tumbling/"+emit, func(t *testing.T) {
			runRepro(t, refCase{kind: "tumbling", size: 500, advance: 500, emit: emit}, []reproStep{
				{pipe: "k@10", aggs: 1},
				{pipe: "k@15", aggs: 1, restart: true},
				{pipe: "k@500", want: []string{"k 0 500 2 15"}, aggs: 1, restart: true},
				{pipe: "k@600", aggs: 1, restart: true},
				{pipe: "k@1000", want: []string{"k 500 1000 2 600"}, aggs: 1, restart: true},
			})
		})
	}
	t.Run("session/close", func(t *testing.T) {
		runRepro(t, refCase{kind: "session", gap: 10, emit: "close"}, []reproStep{
			{pipe: "a@0", aggs: 1, restart: true},
			{pipe: "b@10", aggs: 1, restart: true},
			{pipe: "b@11", want: []string{"a 0 0 1 0"}, aggs: 1, restart: true},
			{pipe: "b@30", want: []string{"b 10 11 2 11"}, aggs: 1, restart: true},
		})
	})
	t.Run("session/suppress", func(t *testing.T) {
		runRepro(t, refCase{kind: "session", gap: 10, emit: "suppress"}, []reproStep{
			{pipe: "a@0", aggs: 1, restart: true},
			{pipe: "b@10", want: []string{"a 0 0 1 0"}, aggs: 1, restart: true},
			{pipe: "b@11", aggs: 1, restart: true},
			{pipe: "b@30", want: []string{"b 10 11 2 11"}, aggs: 1, restart: true},
		})
	})
	t.Run("sliding/close", func(t *testing.T) {
		runRepro(t, refCase{kind: "sliding", diff: 10, emit: "close"}, []reproStep{
			{pipe: "k@100", aggs: 1, restart: true},
			{pipe: "k@105", want: []string{"k 90 100 1 100"}, aggs: 2, restart: true},
			{pipe: "k@200", want: []string{"k 95 105 2 105", "k 101 111 1 105"}, aggs: 1, restart: true},
		})
	})
}
