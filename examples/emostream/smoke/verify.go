package main

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emostream/emostream/examples/emostream/wire"
)

// Status is what the generator knows about one emoji it meant to send.
type Status uint8

// The outcomes of an emoji's POST.
const (
	// StatusPending: never sent (the run was cut short). It must not be in
	// topic1.
	StatusPending Status = iota
	// StatusAcked: the API answered 202, so Kafka acknowledged it; it must
	// be in topic1.
	StatusAcked
	// StatusFailed: the request failed after it may have reached the API
	// (503, timeout, connection reset). Like any at-least-once producer's
	// failed send, the emoji may or may not be in topic1; both are fine.
	StatusFailed
	// StatusUnsent: the connection to the API could not even be opened, so
	// nothing was sent. It must not be in topic1.
	StatusUnsent
)

// Record is one Kafka record as read back from a topic.
type Record struct {
	// Partition and Offset locate the record in its topic.
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	// Timestamp is the record's Kafka timestamp, epoch ms.
	Timestamp int64
	// Headers are read for the DLQ only (nil elsewhere).
	Headers map[string]string
}

// Data is everything Verify needs: the generator's view and the three topics
// read back in full.
type Data struct {
	// Window, Grace and Scale are the aggregators' --window, --grace and
	// --scale.
	Window, Grace time.Duration
	Scale         int64
	// InputTopic is the expected source_topic header of DLQ records.
	InputTopic string
	// Prefix starts every user_id the generator sent; the rest is the
	// emoji's sequence number, an index into Status.
	Prefix string
	Status []Status
	// AckedAt tells when an acknowledged emoji's 202 arrived (epoch ms by
	// the local clock, which the aggregators share); nil or 0: unknown.
	AckedAt func(seq int) int64
	// StrictLate makes late records that were in Kafka in time (see
	// Report.LateInTime) problems instead of warnings.
	StrictLate bool

	Topic1, Topic2, DLQ []Record
}

// LateRun is a run of consecutive offsets of one topic1 partition that all
// went to the DLQ as late.
type LateRun struct {
	Partition      int32
	First, Last    int64 // offsets
	MinTS, MaxTS   int64 // event times, epoch ms
	Acked, Unacked int   // by the generator's status of the emojis
}

// String describes the run on one line.
func (l LateRun) String() string {
	return fmt.Sprintf("partition %d offsets %d-%d (%d records, %d acked), event times %s-%s",
		l.Partition, l.First, l.Last, l.Last-l.First+1, l.Acked,
		time.UnixMilli(l.MinTS).UTC().Format("15:04:05.000"), time.UnixMilli(l.MaxTS).UTC().Format("15:04:05.000"))
}

// pair is one (window, emoji) cell.
type pair struct {
	start int64
	emoji string
}

// Report is the outcome of Verify: the counts it printed and the problems it
// found. The run passes only when Problems is empty.
type Report struct {
	Acked, Failed, Unsent, Pending int // by Status
	Topic1                         int // records in topic1
	FailedInTopic1                 int // emojis of failed requests that reached topic1 anyway
	DLQRecords                     int // records in the DLQ, repeats included
	Late                           int // distinct late records (by source partition/offset)
	Topic2                         int // results in topic2, repeats included
	Repeats                        int // identical repeats of a result
	Windows                        int // distinct windows holding at least one counted emoji
	Pairs                          int // (window, emoji) cells with a count > 0, all checked
	Counted                        int64
	// LateAcked counts the late records whose emoji was acknowledged (as
	// opposed to ones from failed requests, written late by retries).
	LateAcked int
	// LateRuns are the late records as runs of consecutive topic1 offsets,
	// by partition and offset: where and when lateness happened.
	LateRuns []LateRun
	// LateInTime counts late records that were acknowledged at least
	// InTimeMargin before timestamp + grace: in Kafka well before their
	// window closed by the wall clock, and less than grace behind every
	// record appended before them, so neither clock could make them late
	// unless an aggregator closed windows of input it had not caught up
	// with. LateInTimeEx describes a few.
	// RepeatEx describes a few identical repeats of results.
	RepeatEx        []string
	LateInTime      int
	LateInTimeEx    []string
	Problems        []string // one line each, at most a few per kind
	ProblemsOmitted int      // problems not listed (beyond the per-kind cap)
}

// OK tells whether the run passed.
func (r *Report) OK() bool { return len(r.Problems) == 0 && r.ProblemsOmitted == 0 }

// NumProblems is the number of problems found, listed or not.
func (r *Report) NumProblems() int { return len(r.Problems) + r.ProblemsOmitted }

// InTimeMargin is how long before its timestamp + grace a late record must
// have been acknowledged to count in Report.LateInTime: time for a caught-up
// aggregator to fetch and process it.
const InTimeMargin = time.Second

// maxPerKind caps the listed problems of one kind; the rest are counted.
const maxPerKind = 5

type problems struct {
	r     *Report
	kinds map[string]int
}

func (p *problems) add(kind, format string, args ...any) {
	p.kinds[kind]++
	if p.kinds[kind] > maxPerKind {
		p.r.ProblemsOmitted++
		return
	}
	p.r.Problems = append(p.r.Problems, kind+": "+fmt.Sprintf(format, args...))
}

// Verify checks a run exactly:
//
//   - every acknowledged emoji is in topic1, no emoji is there twice, and
//     none that was never sent is there;
//   - every DLQ record is a late record (error=late) pointing at a topic1
//     record with the same content;
//   - for every (window, emoji), the truth is the number of topic1 records
//     in it minus the distinct late records of it; each cell with a truth
//     above 0 has a topic2 result with exactly that count and bursts =
//     ceil(count/scale), and no other result exists;
//   - every topic1 record's timestamp is its event's timestamp, and every
//     topic2 result's record timestamp is the largest topic1 record
//     timestamp among the records counted in its cell (Kafka Streams' rule
//     for aggregation results; a late record in the DLQ does not count);
//   - repeated results for one cell are identical to the first: same key,
//     same value bytes, same record timestamp.
func Verify(d Data) *Report {
	r := &Report{}
	p := &problems{r: r, kinds: map[string]int{}}
	for _, s := range d.Status {
		switch s {
		case StatusAcked:
			r.Acked++
		case StatusFailed:
			r.Failed++
		case StatusUnsent:
			r.Unsent++
		default:
			r.Pending++
		}
	}
	size := d.Window.Milliseconds()
	if size <= 0 {
		p.add("config", "window %v is not positive", d.Window)
		return r
	}

	// topic1: who is there, how often, and the truth before late records.
	r.Topic1 = len(d.Topic1)
	seen := make([]uint8, len(d.Status))
	type pos struct {
		partition int32
		offset    int64
	}
	events := make(map[pos]wire.Event, len(d.Topic1))
	truth := map[pair]int64{}
	for _, rec := range d.Topic1 {
		ev, err := wire.DecodeEvent(rec.Value)
		if err != nil {
			p.add("topic1 undecodable", "partition %d offset %d: %v", rec.Partition, rec.Offset, err)
			continue
		}
		if string(rec.Key) != ev.EmojiType {
			p.add("topic1 key", "partition %d offset %d: key %q, emoji_type %q", rec.Partition, rec.Offset, rec.Key, ev.EmojiType)
		}
		if rec.Timestamp != ev.Timestamp {
			p.add("topic1 timestamp", "partition %d offset %d: record timestamp %s, event timestamp %s", rec.Partition, rec.Offset,
				fmtMS(rec.Timestamp), fmtMS(ev.Timestamp))
		}
		events[pos{rec.Partition, rec.Offset}] = ev
		truth[pair{windowStart(ev.Timestamp, size), ev.EmojiType}]++
		seq, ok := parseSeq(ev.UserID, d.Prefix, len(d.Status))
		if !ok {
			p.add("topic1 foreign record", "partition %d offset %d: user_id %q was not generated by this run", rec.Partition, rec.Offset, ev.UserID)
			continue
		}
		if seen[seq] < 255 {
			seen[seq]++
		}
	}
	for seq, n := range seen {
		switch st := d.Status[seq]; {
		case n > 1:
			p.add("topic1 duplicate", "%s%d is in topic1 %d times (sent once, never retried)", d.Prefix, seq, n)
		case n == 0 && st == StatusAcked:
			p.add("acknowledged emoji lost", "%s%d got 202 but is not in topic1", d.Prefix, seq)
		case n > 0 && st == StatusUnsent:
			p.add("unsent emoji in topic1", "%s%d: its connection was refused, yet it is in topic1", d.Prefix, seq)
		case n > 0 && st == StatusPending:
			p.add("unsent emoji in topic1", "%s%d was never sent, yet it is in topic1", d.Prefix, seq)
		case n > 0 && st == StatusFailed:
			r.FailedInTopic1++
		}
	}

	// DLQ: late records only, each one a topic1 record, counted once.
	r.DLQRecords = len(d.DLQ)
	late := map[pos]wire.Event{}
	for _, rec := range d.DLQ {
		where := fmt.Sprintf("DLQ partition %d offset %d", rec.Partition, rec.Offset)
		if e := rec.Headers["error"]; e != "late" {
			p.add("DLQ record not late", "%s: error=%q source %s/%s/%s", where, e,
				rec.Headers["source_topic"], rec.Headers["source_partition"], rec.Headers["source_offset"])
			continue
		}
		if t := rec.Headers["source_topic"]; t != d.InputTopic {
			p.add("DLQ source", "%s: source_topic %q, want %q", where, t, d.InputTopic)
			continue
		}
		sp, err1 := strconv.ParseInt(rec.Headers["source_partition"], 10, 32)
		so, err2 := strconv.ParseInt(rec.Headers["source_offset"], 10, 64)
		if err1 != nil || err2 != nil {
			p.add("DLQ source", "%s: bad source_partition %q or source_offset %q", where,
				rec.Headers["source_partition"], rec.Headers["source_offset"])
			continue
		}
		at := pos{int32(sp), so}
		ev, err := wire.DecodeEvent(rec.Value)
		if err != nil {
			p.add("DLQ undecodable", "%s: %v", where, err)
			continue
		}
		src, ok := events[at]
		switch {
		case !ok:
			p.add("DLQ source", "%s: points at %s partition %d offset %d, which holds no emoji", where, d.InputTopic, sp, so)
			continue
		case src != ev:
			p.add("DLQ source", "%s: value %+v differs from the topic1 record it points at (%+v)", where, ev, src)
			continue
		}
		if _, dup := late[at]; dup {
			continue // the same late record again, after a crash: counted once
		}
		late[at] = ev
		truth[pair{windowStart(ev.Timestamp, size), ev.EmojiType}]--
		if seq, ok := parseSeq(ev.UserID, d.Prefix, len(d.Status)); ok && d.Status[seq] == StatusAcked && d.AckedAt != nil {
			if acked := d.AckedAt(seq); acked > 0 && acked <= ev.Timestamp+d.Grace.Milliseconds()-InTimeMargin.Milliseconds() {
				r.LateInTime++
				msg := fmt.Sprintf("%s%d (%s partition %d offset %d, timestamp %s) was acknowledged %dms after its timestamp, %dms before its window closed, yet went to the DLQ as late",
					d.Prefix, seq, d.InputTopic, at.partition, at.offset, time.UnixMilli(ev.Timestamp).UTC().Format("15:04:05.000"),
					acked-ev.Timestamp, windowStart(ev.Timestamp, size)+size+d.Grace.Milliseconds()-acked)
				if d.StrictLate {
					p.add("late although in time", "%s", msg)
				} else if len(r.LateInTimeEx) < maxPerKind {
					r.LateInTimeEx = append(r.LateInTimeEx, msg)
				}
			}
		}
	}
	r.Late = len(late)
	positions := make([]pos, 0, len(late))
	for at := range late {
		positions = append(positions, at)
	}
	sort.Slice(positions, func(i, j int) bool {
		if positions[i].partition != positions[j].partition {
			return positions[i].partition < positions[j].partition
		}
		return positions[i].offset < positions[j].offset
	})
	for _, at := range positions {
		ev := late[at]
		acked := 0
		if seq, ok := parseSeq(ev.UserID, d.Prefix, len(d.Status)); ok && d.Status[seq] == StatusAcked {
			acked = 1
			r.LateAcked++
		}
		n := len(r.LateRuns)
		if n > 0 && r.LateRuns[n-1].Partition == at.partition && r.LateRuns[n-1].Last == at.offset-1 {
			lr := &r.LateRuns[n-1]
			lr.Last = at.offset
			lr.MinTS, lr.MaxTS = min(lr.MinTS, ev.Timestamp), max(lr.MaxTS, ev.Timestamp)
			lr.Acked += acked
			lr.Unacked += 1 - acked
			continue
		}
		r.LateRuns = append(r.LateRuns, LateRun{Partition: at.partition, First: at.offset, Last: at.offset,
			MinTS: ev.Timestamp, MaxTS: ev.Timestamp, Acked: acked, Unacked: 1 - acked})
	}

	// The timestamp every result must carry: the largest topic1 record
	// timestamp among the records counted in its cell.
	maxTS := map[pair]int64{}
	for _, rec := range d.Topic1 {
		ev, ok := events[pos{rec.Partition, rec.Offset}]
		if !ok {
			continue // undecodable, reported above
		}
		if _, isLate := late[pos{rec.Partition, rec.Offset}]; isLate {
			continue
		}
		k := pair{windowStart(ev.Timestamp, size), ev.EmojiType}
		if cur, seen := maxTS[k]; !seen || rec.Timestamp > cur {
			maxTS[k] = rec.Timestamp
		}
	}

	// topic2: well-formed, repeats identical, counts exact, timestamps the
	// largest counted.
	r.Topic2 = len(d.Topic2)
	results := map[pair]wire.Result{}
	firstAt := map[pair]Record{}
	for _, rec := range d.Topic2 {
		where := fmt.Sprintf("topic2 partition %d offset %d", rec.Partition, rec.Offset)
		res, err := wire.DecodeResult(rec.Value)
		if err != nil {
			p.add("topic2 undecodable", "%s: %v", where, err)
			continue
		}
		if string(rec.Key) != res.EmojiType {
			p.add("topic2 key", "%s: key %q, emoji_type %q", where, rec.Key, res.EmojiType)
		}
		if res.WindowStart != windowStart(res.WindowStart, size) || res.WindowEnd != res.WindowStart+size {
			p.add("topic2 window", "%s: window [%d, %d) is not an aligned %v window", where, res.WindowStart, res.WindowEnd, d.Window)
		}
		if want := wire.Bursts(res.Count, d.Scale); res.Bursts != want {
			p.add("topic2 bursts", "%s: %s count %d bursts %d, want ceil(%d/%d) = %d", where, res.EmojiType, res.Count, res.Bursts, res.Count, d.Scale, want)
		}
		k := pair{res.WindowStart, res.EmojiType}
		if want, ok := maxTS[k]; ok && rec.Timestamp != want {
			p.add("topic2 timestamp", "%s: window %s %s count %d: record timestamp %s, want %s (the largest timestamp of its counted topic1 records)",
				where, fmtMS(k.start), k.emoji, res.Count, fmtMS(rec.Timestamp), fmtMS(want))
		}
		if prev, ok := results[k]; ok {
			f := firstAt[k]
			switch {
			case prev != res:
				p.add("topic2 conflicting results", "%s: window %s %s: %+v after %+v", where, fmtMS(k.start), k.emoji, res, prev)
			case !bytes.Equal(rec.Key, f.Key) || !bytes.Equal(rec.Value, f.Value) || rec.Timestamp != f.Timestamp:
				p.add("topic2 repeat not identical", "%s: window %s %s: key %q value %s timestamp %s, first written at partition %d offset %d as key %q value %s timestamp %s",
					where, fmtMS(k.start), k.emoji, rec.Key, rec.Value, fmtMS(rec.Timestamp), f.Partition, f.Offset, f.Key, f.Value, fmtMS(f.Timestamp))
			default:
				r.Repeats++
				if len(r.RepeatEx) < maxPerKind {
					r.RepeatEx = append(r.RepeatEx, fmt.Sprintf("window %s %s count %d: partition %d offset %d, again at partition %d offset %d",
						fmtMS(k.start), k.emoji, res.Count, f.Partition, f.Offset, rec.Partition, rec.Offset))
				}
			}
			continue
		}
		results[k] = res
		firstAt[k] = rec
	}

	windows := map[int64]bool{}
	keys := make([]pair, 0, len(truth))
	for k := range truth {
		keys = append(keys, k)
	}
	for k := range results {
		if _, ok := truth[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].start != keys[j].start {
			return keys[i].start < keys[j].start
		}
		return keys[i].emoji < keys[j].emoji
	})
	for _, k := range keys {
		want := truth[k]
		res, ok := results[k]
		switch {
		case want < 0:
			p.add("late count", "window %s %s: more late records than records", fmtMS(k.start), k.emoji)
		case want == 0 && ok:
			p.add("topic2 spurious result", "window %s %s: count %d, but no countable emoji is in this window", fmtMS(k.start), k.emoji, res.Count)
		case want > 0 && !ok:
			p.add("topic2 missing result", "window %s %s: no result, want count %d", fmtMS(k.start), k.emoji, want)
		case want > 0 && res.Count != want:
			p.add("topic2 wrong count", "window %s %s: count %d, want %d (diff %+d)", fmtMS(k.start), k.emoji, res.Count, want, res.Count-want)
		}
		if want > 0 {
			r.Pairs++
			r.Counted += want
			windows[k.start] = true
		}
	}
	r.Windows = len(windows)
	return r
}

// windowStart is the start of the tumbling window of size ms holding ts.
func windowStart(ts, size int64) int64 {
	s := ts / size * size
	if ts < 0 && ts%size != 0 {
		s -= size
	}
	return s
}

// parseSeq reads the sequence number from a user_id of this run.
func parseSeq(userID, prefix string, n int) (int, bool) {
	rest, ok := strings.CutPrefix(userID, prefix)
	if !ok || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	seq, err := strconv.Atoi(rest)
	if err != nil || seq < 0 || seq >= n {
		return 0, false
	}
	return seq, true
}

// fmtMS shows an epoch-milliseconds window start or timestamp readably.
func fmtMS(ms int64) string {
	return fmt.Sprintf("%d (%s)", ms, time.UnixMilli(ms).UTC().Format("15:04:05.000"))
}
