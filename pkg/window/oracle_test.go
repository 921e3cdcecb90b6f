package window_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/IBM/sarama"
	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
	"github.com/emostream/emostream/pkg/window"
)

// oracle is a brute-force model of windowed counting: per partition, stream
// time, the close watermark, every window's count and which windows closed.
type oracle struct {
	size, adv, grace int64
	gap              int64 // > 0: session windows
	diff             int64 // > 0: sliding windows
	wall             bool
	parts            map[int32]*oraclePart
	late             map[string]bool // "partition/offset" of late records
}

type oraclePart struct {
	st, closedTo int64
	counts       map[winKey]int64
	closed       map[winKey]bool
	maxTs        map[winKey]int64 // sliding windows: latest record time
	finals       []winResult
}

type winKey struct {
	key        string
	start, end int64
}

type winResult struct {
	winKey
	count int64
}

func newOracle(size, adv, grace int64, wall bool, partitions int32) *oracle {
	o := &oracle{size: size, adv: adv, grace: grace, wall: wall, parts: map[int32]*oraclePart{}, late: map[string]bool{}}
	for p := range partitions {
		o.parts[p] = &oraclePart{st: -1 << 62, closedTo: -1 << 62, counts: map[winKey]int64{}, closed: map[winKey]bool{}, maxTs: map[winKey]int64{}}
	}
	return o
}

func (o *oracle) windows(ts int64) [][2]int64 {
	var out [][2]int64
	for start := ts - ts%o.adv; start > ts-o.size && start >= 0; start -= o.adv {
		out = append([][2]int64{{start, start + o.size}}, out...)
	}
	return out
}

func (o *oracle) closeBound(now int64) int64 {
	if o.gap > 0 {
		return now - o.grace - o.gap
	}
	if o.diff > 0 {
		return now - o.grace - 1 // inclusive ends
	}
	return now - o.grace
}

func (o *oracle) record(p int32, offset int64, key string, ts, wallNow int64) {
	part := o.parts[p]
	part.st = max(part.st, ts)
	bound := max(part.closedTo, o.closeBound(part.st))
	if o.wall {
		bound = max(bound, o.closeBound(wallNow))
	}
	if o.gap > 0 {
		o.recordSession(part, p, offset, key, ts, bound)
		return
	}
	if o.diff > 0 {
		o.recordSliding(part, p, offset, key, ts, bound)
		return
	}
	late := 0
	ws := o.windows(ts)
	for _, w := range ws {
		k := winKey{key, w[0], w[1]}
		if w[1] <= bound {
			late++
			continue
		}
		part.counts[k]++
	}
	if late == len(ws) {
		o.late[fmt.Sprintf("%d/%d", p, offset)] = true
	}
	o.close(part, bound)
}

// recordSession is Kafka Streams' session algorithm on plain maps.
func (o *oracle) recordSession(part *oraclePart, p int32, offset int64, key string, ts, bound int64) {
	start, end := ts, ts
	var found []winKey
	for k := range part.counts {
		if k.key == key && k.end >= ts-o.gap && k.start <= ts+o.gap && !part.closed[k] {
			found = append(found, k)
			start, end = min(start, k.start), max(end, k.end)
		}
	}
	if end < bound {
		o.late[fmt.Sprintf("%d/%d", p, offset)] = true
		o.close(part, bound)
		return
	}
	var n int64 = 1
	for _, k := range found {
		n += part.counts[k]
		delete(part.counts, k)
		delete(part.closed, k)
	}
	k := winKey{key, start, end}
	part.counts[k] = n
	if end <= part.closedTo {
		part.closed[k] = true
		part.finals = append(part.finals, winResult{k, n})
	}
	o.close(part, bound)
}

func (o *oracle) advanceWall(wallNow int64) {
	if !o.wall {
		return
	}
	for _, part := range o.parts {
		o.close(part, max(part.closedTo, o.closeBound(part.st), o.closeBound(wallNow)))
	}
}

func (o *oracle) close(part *oraclePart, bound int64) {
	if bound <= part.closedTo {
		return
	}
	var due []winKey
	for k := range part.counts {
		if !part.closed[k] && k.end <= bound {
			due = append(due, k)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if due[i].end != due[j].end {
			return due[i].end < due[j].end
		}
		return bytes.Compare(bufferKey(due[i]), bufferKey(due[j])) < 0
	})
	for _, k := range due {
		part.closed[k] = true
		part.finals = append(part.finals, winResult{k, part.counts[k]})
	}
	part.closedTo = bound
}

// bufferKey is how Kafka Streams' suppression buffer orders equal end times:
// the key bytes followed by the start as a big-endian number.
func bufferKey(k winKey) []byte {
	return binary.BigEndian.AppendUint64([]byte(k.key), uint64(k.start))
}

func partitionOf(key string, n int32) int32 {
	// Where the Java client's partitioner (and so package stream) puts key.
	p, _ := sarama.NewMurmur2Partitioner("").Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, n)
	return p
}

// TestRandomAgainstOracle runs random input — out of order, with redeliveries
// of already processed records and wall-clock steps — through windowed counts
// of every kind and compares with the oracle: final results exactly once
// (repeats identical), on-update values never above the true count and ending
// at it, late records in the DLQ exactly as the oracle says.
func TestRandomAgainstOracle(t *testing.T) {
	type variant struct {
		name       string
		gap, diff  int64
		size, adv  int64
		grace      int64
		emit       window.EmitStrategy
		wall       bool
		partitions int32
	}
	var variants []variant
	for _, shape := range []struct {
		name      string
		size, adv int64
	}{{"tumbling", 2000, 2000}, {"hopping", 3000, 1000}} {
		for _, grace := range []int64{0, 700} {
			for _, emit := range []window.EmitStrategy{window.OnWindowUpdate, window.OnWindowClose} {
				for _, wall := range []bool{false, true} {
					variants = append(variants, variant{
						name: fmt.Sprintf("%s/grace=%d/emit=%d/wall=%v", shape.name, grace, emit, wall),
						size: shape.size, adv: shape.adv, grace: grace, emit: emit, wall: wall, partitions: 3,
					})
				}
			}
		}
	}
	for _, grace := range []int64{0, 700} {
		for _, emit := range []window.EmitStrategy{window.OnWindowUpdate, window.OnWindowClose} {
			for _, wall := range []bool{false, true} {
				variants = append(variants, variant{
					name: fmt.Sprintf("session/grace=%d/emit=%d/wall=%v", grace, emit, wall),
					gap:  800, grace: grace, emit: emit, wall: wall, partitions: 3,
				})
			}
		}
	}
	for _, grace := range []int64{0, 700} {
		for _, emit := range []window.EmitStrategy{window.OnWindowUpdate, window.OnWindowClose} {
			for _, wall := range []bool{false, true} {
				variants = append(variants, variant{
					name: fmt.Sprintf("sliding/grace=%d/emit=%d/wall=%v", grace, emit, wall),
					diff: 1000, grace: grace, emit: emit, wall: wall, partitions: 3,
				})
			}
		}
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 5; seed++ {
				runOracleCase(t, seed, v.gap, v.diff, v.size, v.adv, v.grace, v.emit, v.wall, v.partitions)
			}
		})
	}
}

func runOracleCase(t *testing.T, seed uint64, gap, diff, size, adv, grace int64, emit window.EmitStrategy, wall bool, partitions int32) {
	rng := rand.New(rand.NewPCG(seed, 42))
	b := stream.NewBuilder()
	src := stream.Source(b, "in", stream.String(), stream.String())
	ms := func(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
	// Redeliver below replays any suffix of a partition, also records a
	// commit covered (Kafka replays only from the last commit): a retention
	// longer than the run keeps every window those records were counted in.
	opts := []window.Opt{window.Named("c"), window.Emit(emit), window.WallClockClose(wall), window.LateRecordsTo("late"), window.Retention(time.Hour)}
	var counts *stream.Stream[window.Windowed[string], int64]
	switch {
	case gap > 0:
		counts = window.CountSessions(stream.GroupByKey(src), window.OfInactivityGapAndGrace(ms(gap), ms(grace)), opts...)
	case diff > 0:
		counts = window.Count(stream.GroupByKey(src), window.OfTimeDifferenceAndGrace(ms(diff), ms(grace)), opts...)
	default:
		counts = window.Count(stream.GroupByKey(src), window.OfSizeAndGrace(ms(size), ms(grace)).AdvanceBy(ms(adv)), opts...)
	}
	counts.To("out", window.WindowedSerde(stream.String()), stream.Int64())
	top, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(top, stream.Partitions(partitions), stream.StartTime(time.UnixMilli(0)))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	out := streamtest.NewOutputTopic(d, "out", window.WindowedSerde(stream.String()), stream.Int64())

	o := newOracle(size, adv, grace, wall, partitions)
	o.gap, o.diff = gap, diff
	keys := []string{"a", "b", "c", "d", "e"}
	offsets := map[int32]int64{}
	var wallNow, base int64
	var outputs []stream.KeyValue[window.Windowed[string], int64]
	for step := 0; step < 400; step++ {
		switch r := rng.IntN(100); {
		case r < 80:
			base += rng.Int64N(300)
			ts := base - rng.Int64N(3000) // out of order, sometimes late
			if ts < 0 {
				ts = 0
			}
			key := keys[rng.IntN(len(keys))]
			p := partitionOf(key, partitions)
			require.NoError(t, in.PipeAt(key, "", time.UnixMilli(ts)))
			o.record(p, offsets[p], key, ts, wallNow)
			offsets[p]++
		case r < 90:
			// Kafka redelivers a suffix of a partition; nothing may change.
			p := int32(rng.IntN(int(partitions)))
			if offsets[p] > 0 {
				require.NoError(t, d.Redeliver("in", p, rng.Int64N(offsets[p])))
			}
		default:
			if wall {
				// The wall clock follows event time here, with some lag or lead.
				wallNow = max(wallNow, base+rng.Int64N(2000)-1000)
				wallNow += 100 // punctuation interval
				require.NoError(t, d.AdvanceWallClock(time.Duration(wallNow)*time.Millisecond-time.Duration(d.WallClock().UnixMilli())*time.Millisecond))
				o.advanceWall(wallNow)
			}
		}
		kvs, err := out.ReadKeyValues()
		require.NoError(t, err)
		outputs = append(outputs, kvs...)
	}

	truth := map[winKey]int64{}
	for _, part := range o.parts {
		for k, c := range part.counts {
			truth[k] = c
		}
	}
	if emit == window.OnWindowClose {
		got := map[winKey]int64{}
		for _, kv := range outputs {
			k := winKey{kv.Key.Key, kv.Key.Start.UnixMilli(), kv.Key.End.UnixMilli()}
			if prev, dup := got[k]; dup {
				require.Equal(t, prev, kv.Value, "seed %d: repeated final result for %v differs", seed, k)
			}
			got[k] = kv.Value
		}
		want := map[winKey]int64{}
		for _, part := range o.parts {
			for _, f := range part.finals {
				want[f.winKey] = f.count
			}
		}
		require.Equal(t, want, got, "seed %d: final results", seed)
	} else {
		latest := map[winKey]int64{}
		for _, kv := range outputs {
			k := winKey{kv.Key.Key, kv.Key.Start.UnixMilli(), kv.Key.End.UnixMilli()}
			if gap == 0 {
				require.LessOrEqual(t, kv.Value, truth[k], "seed %d: %v counted twice", seed, k)
			}
			latest[k] = kv.Value
		}
		if gap > 0 {
			// Merged-away sessions have outputs but no truth; live ones must match.
			for k := range latest {
				if _, live := truth[k]; !live {
					delete(latest, k)
				}
			}
		}
		require.Equal(t, truth, latest, "seed %d: latest values", seed)
	}
	gotLate := map[string]bool{}
	for _, r := range d.RawOutput("late") {
		var p, off string
		for _, h := range r.Headers {
			switch h.Key {
			case "source_partition":
				p = string(h.Value)
			case "source_offset":
				off = string(h.Value)
			}
		}
		_, err := strconv.Atoi(off)
		require.NoError(t, err)
		gotLate[p+"/"+off] = true
	}
	require.Equal(t, o.late, gotLate, "seed %d: late records", seed)
}
