package main

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/examples/emostream/load"
	"github.com/emostream/emostream/examples/emostream/wire"
)

// The data set: deterministic for a given (records, partitions, rate,
// jitter). Event time starts at t0 (aligned to the window size) and advances
// by 1000/rate ms per record; each record's timestamp is pulled back by a
// random 0..jitter ms, so records are slightly out of order (jitter below the
// grace period makes none of them late). Emojis are drawn uniformly from
// load.DefaultEmojis (24, including ZWJ sequences, flags, skin tones and a
// keycap), user ids from 10,000 users.
//
// After the real records, each partition gets one sentinel record, keyed by
// an emoji that hashes to that partition (and is not one of the 24), one
// hour of event time after the last real record. It moves every partition's
// stream time past end + grace of every real window, so every real window
// closes by stream time; the sentinel's own window never closes and produces
// no result.
const (
	t0          int64  = 1767225600000 // 2026-01-01T00:00:00Z, a multiple of 2000
	windowMs    int64  = 2000
	graceMs     int64  = 500
	scale       int64  = 1000
	sentinelGap int64  = 3600_000
	users              = 10_000
	seed        uint64 = 20261126
)

// rkey identifies one window result.
type rkey struct {
	start int64
	emoji string
}

type dataset struct {
	n, partitions int
	rate          int // records per second of event time
	jitter        int64
	emojis        []string
	sentinels     []string // per partition
	partOf        map[string]int32
	// expected final counts of every real (window, emoji); late records
	// (by each partition's stream time) excluded.
	expected    map[rkey]int64
	late        int
	perPart     []int // real records per partition
	first, last int64 // event-time range of the real records
}

func partitionOf(key string, partitions int) int32 {
	// The Java client's partitioner, as the loader's producer uses.
	p, _ := sarama.NewMurmur2Partitioner("").Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, int32(partitions))
	return p
}

func newDataset(n, partitions, rate int, jitter int64) (*dataset, error) {
	d := &dataset{n: n, partitions: partitions, rate: rate, jitter: jitter,
		emojis: load.DefaultEmojis(), partOf: map[string]int32{}, expected: map[rkey]int64{},
		perPart: make([]int, partitions)}
	for _, e := range d.emojis {
		d.partOf[e] = partitionOf(e, partitions)
	}
	d.sentinels = make([]string, partitions)
	found := 0
	for r := rune(0x1F300); r <= 0x1FAFF && found < partitions; r++ {
		s := string(r)
		if slices.Contains(d.emojis, s) || !wire.ValidEmoji(s) {
			continue
		}
		p := partitionOf(s, partitions)
		if d.sentinels[p] == "" {
			d.sentinels[p] = s
			d.partOf[s] = p
			found++
		}
	}
	if found < partitions {
		return nil, fmt.Errorf("found sentinel emojis for only %d of %d partitions", found, partitions)
	}
	// Compute the expected results by generating the records once.
	streamTime := make([]int64, partitions)
	for i := range streamTime {
		streamTime[i] = -1 << 62
	}
	d.each(func(key string, ev wire.Event) {
		p := d.partOf[key]
		streamTime[p] = max(streamTime[p], ev.Timestamp)
		d.perPart[p]++
		ws := floorDiv(ev.Timestamp, windowMs) * windowMs
		if ws+windowMs <= streamTime[p]-graceMs {
			d.late++
			return
		}
		d.expected[rkey{ws, key}]++
	}, false)
	return d, nil
}

// each calls fn for every record in production order; with sentinels also for
// the sentinel records at the end.
func (d *dataset) each(fn func(key string, ev wire.Event), sentinels bool) {
	rng := rand.New(rand.NewPCG(seed, uint64(d.n)))
	var base int64
	for i := 0; i < d.n; i++ {
		base = t0 + int64(i)*1000/int64(d.rate)
		ts := max(t0, base-rng.Int64N(d.jitter+1))
		e := d.emojis[rng.IntN(len(d.emojis))]
		u := rng.IntN(users)
		if i == 0 {
			d.first = ts
		}
		d.last = max(d.last, ts)
		fn(e, wire.Event{UserID: fmt.Sprintf("user-%d", u), EmojiType: e, Timestamp: ts})
	}
	if sentinels {
		for _, s := range d.sentinels {
			fn(s, wire.Event{UserID: "bench-sentinel", EmojiType: s, Timestamp: base + sentinelGap})
		}
	}
}

func (d *dataset) windows() int { return int((d.last-d.first)/windowMs) + 1 }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
