package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/wire"
)

const (
	testPrefix = "sT-"
	testWindow = 2 * time.Second
	w0         = int64(1_800_000_000_000) // a window start (aligned to 2 s)
)

// scenario builds a run's data step by step.
type scenario struct {
	d    Data
	next map[int32]int64 // next offset per topic1 partition
}

func newScenario(n int) *scenario {
	return &scenario{
		d: Data{Window: testWindow, Grace: 2 * time.Second, Scale: 2, InputTopic: "in", Prefix: testPrefix,
			Status: make([]Status, n)},
		next: map[int32]int64{},
	}
}

// emit appends emoji seq to topic1 on partition p and returns its offset.
func (s *scenario) emit(seq int, p int32, emoji string, ts int64) int64 {
	ev := wire.Event{UserID: testPrefix + strconv.Itoa(seq), EmojiType: emoji, Timestamp: ts}
	v, _ := ev.Marshal()
	off := s.next[p]
	s.next[p]++
	s.d.Topic1 = append(s.d.Topic1, Record{Partition: p, Offset: off, Key: []byte(emoji), Value: v, Timestamp: ts})
	return off
}

// late appends a DLQ record for the topic1 record at p/off.
func (s *scenario) late(p int32, off int64) {
	for _, r := range s.d.Topic1 {
		if r.Partition == p && r.Offset == off {
			s.d.DLQ = append(s.d.DLQ, Record{Partition: 0, Offset: int64(len(s.d.DLQ)), Key: r.Key, Value: r.Value, Timestamp: r.Timestamp,
				Headers: map[string]string{"error": "late", "source_topic": "in",
					"source_partition": strconv.Itoa(int(p)), "source_offset": strconv.FormatInt(off, 10)}})
			return
		}
	}
	panic("no such record")
}

// result appends a topic2 result with record timestamp ts.
func (s *scenario) result(start int64, emoji string, count, ts int64) {
	res := wire.NewResult(start, testWindow, emoji, count, s.d.Scale)
	v, _ := res.Marshal()
	s.d.Topic2 = append(s.d.Topic2, Record{Partition: 0, Offset: int64(len(s.d.Topic2)), Key: []byte(emoji), Value: v, Timestamp: ts})
}

// good is a consistent run: 6 emojis sent, 5 acknowledged, 1 failed but in
// topic1 anyway, 1 late record (in the DLQ twice), a repeated result. Each
// result carries the largest timestamp of its counted records.
func good() *scenario {
	s := newScenario(7)
	for i := range 5 {
		s.d.Status[i] = StatusAcked
	}
	s.d.Status[5] = StatusFailed
	s.d.Status[6] = StatusUnsent
	s.emit(0, 0, "🔥", w0+1)
	s.emit(1, 0, "🔥", w0+1999)
	s.emit(2, 1, "👍🏽", w0+500)
	s.emit(3, 0, "🔥", w0+2000) // next window
	off := s.emit(4, 1, "👍🏽", w0+10)
	s.late(1, off)
	s.late(1, off) // written again after a crash
	s.emit(5, 1, "🇮🇳", w0+2500)
	s.result(w0, "🔥", 2, w0+1999)
	s.result(w0, "👍🏽", 1, w0+500) // not w0+10: that record is late
	s.result(w0+2000, "🔥", 1, w0+2000)
	s.result(w0+2000, "🇮🇳", 1, w0+2500)
	s.result(w0, "🔥", 2, w0+1999) // identical repeat
	return s
}

func TestVerifyPass(t *testing.T) {
	r := Verify(good().d)
	require.True(t, r.OK(), "%v", r.Problems)
	require.Equal(t, 5, r.Acked)
	require.Equal(t, 1, r.Failed)
	require.Equal(t, 1, r.Unsent)
	require.Equal(t, 6, r.Topic1)
	require.Equal(t, 1, r.FailedInTopic1)
	require.Equal(t, 2, r.DLQRecords)
	require.Equal(t, 1, r.Late)
	require.Equal(t, 5, r.Topic2)
	require.Equal(t, 1, r.Repeats)
	require.Equal(t, []string{"window 1800000000000 (08:00:00.000) 🔥 count 2: partition 0 offset 0, again at partition 0 offset 4"}, r.RepeatEx)
	require.Equal(t, 2, r.Windows)
	require.Equal(t, 4, r.Pairs)
	require.Equal(t, int64(5), r.Counted)
	require.Equal(t, 1, r.LateAcked)
	require.Equal(t, []LateRun{{Partition: 1, First: 1, Last: 1, MinTS: w0 + 10, MaxTS: w0 + 10, Acked: 1}}, r.LateRuns)
	require.Equal(t, "partition 1 offsets 1-1 (1 records, 1 acked), event times 08:00:00.010-08:00:00.010", r.LateRuns[0].String())
}

func TestVerifyFailures(t *testing.T) {
	cases := []struct {
		name   string
		change func(s *scenario)
		want   string
	}{
		{"acked emoji lost", func(s *scenario) {
			s.d.Topic1 = s.d.Topic1[1:] // seq 0 gone
			s.d.Topic2[0].Value = mustResult(w0, "🔥", 1)
			s.d.Topic2[4].Value = mustResult(w0, "🔥", 1)
		}, "acknowledged emoji lost: sT-0 "},
		{"duplicate in topic1", func(s *scenario) { s.emit(3, 1, "🔥", w0+2000) }, "topic1 duplicate: sT-3 is in topic1 2 times"},
		{"unsent emoji present", func(s *scenario) { s.emit(6, 1, "🔥", w0+2001) }, "unsent emoji in topic1: sT-6"},
		{"foreign record", func(s *scenario) {
			v, _ := wire.Event{UserID: "other-1", EmojiType: "🔥", Timestamp: w0}.Marshal()
			s.d.Topic1 = append(s.d.Topic1, Record{Partition: 2, Offset: 0, Key: []byte("🔥"), Value: v})
		}, "topic1 foreign record"},
		{"count too high", func(s *scenario) { s.d.Topic2[1].Value = mustResult(w0, "👍🏽", 2) }, "topic2 wrong count: window 1800000000000 (08:00:00.000) 👍🏽: count 2, want 1"},
		{"missing result", func(s *scenario) { s.d.Topic2 = s.d.Topic2[:3] }, "topic2 missing result: window 1800000002000 (08:00:02.000) 🇮🇳"},
		{"spurious result", func(s *scenario) { s.result(w0+4000, "🔥", 3, w0+4000) }, "topic2 spurious result"},
		{"result for an all-late cell", func(s *scenario) {
			s.late(0, 2) // seq 3, the only 🔥 of window w0+2000
		}, "topic2 spurious result: window 1800000002000 (08:00:02.000) 🔥: count 1"},
		{"conflicting repeat", func(s *scenario) { s.d.Topic2[4].Value = mustResult(w0, "🔥", 3) }, "topic2 conflicting results"},
		{"wrong bursts", func(s *scenario) {
			v, _ := wire.Result{WindowStart: w0, WindowEnd: w0 + 2000, EmojiType: "👍🏽", Count: 1, Bursts: 2}.Marshal()
			s.d.Topic2[1].Value = v
		}, "topic2 bursts"},
		{"unaligned window", func(s *scenario) {
			v, _ := wire.Result{WindowStart: w0 + 1, WindowEnd: w0 + 2001, EmojiType: "👍🏽", Count: 1, Bursts: 1}.Marshal()
			s.d.Topic2[1].Value = v
		}, "topic2 window"},
		{"non-late DLQ record", func(s *scenario) {
			s.d.DLQ = append(s.d.DLQ, Record{Value: []byte("x"), Headers: map[string]string{"error": "invalid json"}})
		}, `DLQ record not late: DLQ partition 0 offset 0: error="invalid json"`},
		{"DLQ points nowhere", func(s *scenario) {
			s.d.DLQ[1].Headers = map[string]string{"error": "late", "source_topic": "in", "source_partition": "1", "source_offset": "99"}
		}, "DLQ source"},
		{"DLQ value differs", func(s *scenario) {
			v, _ := wire.Event{UserID: testPrefix + "4", EmojiType: "🔥", Timestamp: w0 + 10}.Marshal()
			s.d.DLQ[1].Value = v
		}, "DLQ source"},
		{"late record counted anyway", func(s *scenario) {
			s.d.Topic2[1].Value = mustResult(w0, "👍🏽", 2)
		}, "topic2 wrong count"},
		{"undecodable result", func(s *scenario) { s.d.Topic2[0].Value = []byte(`{"count":1}`) }, "topic2 undecodable"},
		{"result timestamp is window_end", func(s *scenario) {
			s.d.Topic2[0].Timestamp, s.d.Topic2[4].Timestamp = w0+2000, w0+2000
		}, "topic2 timestamp: topic2 partition 0 offset 0: window 1800000000000 (08:00:00.000) 🔥 count 2: record timestamp 1800000002000 (08:00:02.000), want 1800000001999 (08:00:01.999)"},
		{"result timestamp is the smallest", func(s *scenario) { s.d.Topic2[2].Timestamp = w0 + 1999 },
			"topic2 timestamp: topic2 partition 0 offset 2: window 1800000002000 (08:00:02.000) 🔥 count 1: record timestamp 1800000001999"},
		{"result timestamp one ms off", func(s *scenario) { s.d.Topic2[3].Timestamp = w0 + 2499 }, "topic2 timestamp"},
		{"repeat with another timestamp", func(s *scenario) { s.d.Topic2[4].Timestamp = w0 + 1998 },
			"topic2 repeat not identical: topic2 partition 0 offset 4: window 1800000000000 (08:00:00.000) 🔥"},
		{"repeat with other value bytes", func(s *scenario) {
			s.d.Topic2[4].Value = []byte(` ` + string(s.d.Topic2[0].Value)) // decodes to the same result
		}, "topic2 repeat not identical"},
		{"topic1 record timestamp is not the event's", func(s *scenario) { s.d.Topic1[2].Timestamp++ },
			"topic1 timestamp: partition 1 offset 0: record timestamp 1800000000501 (08:00:00.501), event timestamp 1800000000500"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := good()
			c.change(s)
			r := Verify(s.d)
			require.False(t, r.OK())
			require.Contains(t, strings.Join(r.Problems, "\n"), c.want)
		})
	}
}

// A late record in the DLQ is not counted, so its timestamp is not the
// result's, even when it is the cell's largest.
func TestVerifyTimestampIgnoresLate(t *testing.T) {
	s := newScenario(3)
	for i := range 3 {
		s.d.Status[i] = StatusAcked
	}
	s.emit(0, 0, "👍🏽", w0+100)
	off := s.emit(1, 0, "👍🏽", w0+1900)
	s.late(0, off)
	s.emit(2, 0, "👍🏽", w0+50)
	s.result(w0, "👍🏽", 2, w0+100)
	r := Verify(s.d)
	require.True(t, r.OK(), "%v", r.Problems)

	s.d.Topic2[0].Timestamp = w0 + 1900
	r = Verify(s.d)
	require.False(t, r.OK())
	require.Equal(t, []string{"topic2 timestamp: topic2 partition 0 offset 0: window 1800000000000 (08:00:00.000) 👍🏽 count 2: " +
		"record timestamp 1800000001900 (08:00:01.900), want 1800000000100 (08:00:00.100) (the largest timestamp of its counted topic1 records)"}, r.Problems)
}

func TestVerifyLateInTime(t *testing.T) {
	for _, c := range []struct {
		ackAfter int64 // ms after the late record's timestamp (w0+10)
		strict   bool
		inTime   int
	}{{100, false, 1}, {1000, false, 1}, {1001, false, 0}, {100, true, 1}, {0, false, 0}} {
		s := good()
		s.d.StrictLate = c.strict
		s.d.AckedAt = func(seq int) int64 {
			if seq == 4 && c.ackAfter > 0 {
				return w0 + 10 + c.ackAfter
			}
			return 0
		}
		r := Verify(s.d)
		require.Equal(t, c.inTime, r.LateInTime, "%+v", c)
		if c.strict {
			require.False(t, r.OK())
			require.Contains(t, r.Problems[0], "late although in time: sT-4 (in partition 1 offset 1, timestamp 08:00:00.010) was acknowledged 100ms after its timestamp, 3890ms before its window closed")
		} else {
			require.True(t, r.OK(), "%v", r.Problems)
			require.Len(t, r.LateInTimeEx, c.inTime)
		}
	}
}

func TestVerifyCapsProblems(t *testing.T) {
	s := newScenario(20)
	for i := range 20 {
		s.d.Status[i] = StatusAcked
	}
	r := Verify(s.d)
	require.Len(t, r.Problems, maxPerKind)
	require.Equal(t, 20-maxPerKind, r.ProblemsOmitted)
	require.Equal(t, 20, r.NumProblems())
}

func TestParseSeq(t *testing.T) {
	for _, c := range []struct {
		in   string
		seq  int
		okay bool
	}{
		{"sT-0", 0, true}, {"sT-9", 9, true}, {"sT-10", 0, false}, {"sT-", 0, false},
		{"sT-01", 0, false}, {"sT--1", 0, false}, {"xT-1", 0, false}, {"sT-1a", 0, false},
	} {
		seq, ok := parseSeq(c.in, testPrefix, 10)
		require.Equal(t, c.okay, ok, c.in)
		require.Equal(t, c.seq, seq, c.in)
	}
}

func TestWindowStart(t *testing.T) {
	require.Equal(t, int64(2000), windowStart(3999, 2000))
	require.Equal(t, int64(4000), windowStart(4000, 2000))
	require.Equal(t, int64(-2000), windowStart(-1, 2000))
}

func mustResult(start int64, emoji string, count int64) []byte {
	v, err := wire.NewResult(start, testWindow, emoji, count, 2).Marshal()
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return v
}
