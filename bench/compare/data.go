package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"

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
	// keys, when positive, is the number of distinct keys per window (the
	// scale sweep, see newKeyedDataset); 0 is the classic emoji data set.
	keys int
	// noSentinels leaves the sentinels out: the windows stay open (the
	// restore run's stores keep every key).
	noSentinels bool
	emojis      []string
	sentinels   []string // per partition
	partOf      map[string]int32
	// expected final counts of every real (window, emoji); late records
	// (by each partition's stream time) excluded.
	expected    map[rkey]int64
	late        int
	perPart     []int // real records per partition
	first, last int64 // event-time range of the real records
}

func newDataset(n, partitions, rate int, jitter int64) (*dataset, error) {
	return buildDataset(&dataset{n: n, partitions: partitions, rate: rate, jitter: jitter})
}

// newKeyedDataset is the scale sweep's data set (bench-scale): every 2 s
// window holds max(keys, 4000) records and every one of keys distinct keys
// at least once (fewer only where the jitter moves a window's first records
// into the previous window). With keys <= 24 the keys are the first keys
// emojis of load.DefaultEmojis; beyond, "<emoji>:<user>" (emoji × user, as
// a per-user count would key them). The event's emoji_type is the key's
// emoji. Event time advances by 2000/max(keys, 4000) ms per record (each
// pulled back by 0..jitter ms); the sentinels follow unless noSentinels.
func newKeyedDataset(n, partitions, keys int, jitter int64, noSentinels bool) (*dataset, error) {
	if keys < 1 {
		return nil, errors.New("keys must be positive")
	}
	return buildDataset(&dataset{n: n, partitions: partitions, jitter: jitter, keys: keys, noSentinels: noSentinels})
}

// sentinelCount is the number of sentinel records after the real ones.
func (d *dataset) sentinelCount() int {
	if d.noSentinels {
		return 0
	}
	return d.partitions
}

// perWindow is the number of records per 2 s window of a keyed data set.
func (d *dataset) perWindow() int { return max(d.keys, 4000) }

// keyName is the name of key index i of a keyed data set, and its emoji.
func (d *dataset) keyName(i int) (key, emoji string) {
	emoji = d.emojis[i%len(d.emojis)]
	if d.keys <= len(d.emojis) {
		return emoji, emoji
	}
	return emoji + ":" + strconv.Itoa(i/len(d.emojis)), emoji
}

func buildDataset(d *dataset) (*dataset, error) {
	n, partitions := d.n, d.partitions
	d.emojis, d.partOf, d.expected, d.perPart = load.DefaultEmojis(), map[string]int32{}, map[rkey]int64{}, make([]int, partitions)
	if d.keys > 0 && n < d.keys {
		return nil, fmt.Errorf("%d records cannot hold %d distinct keys", n, d.keys)
	}
	// The Java client's partitioner, as the loader's producer uses.
	part := sarama.NewMurmur2Partitioner("")
	partitionOf := func(key string, partitions int) int32 {
		p, _ := part.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, int32(partitions))
		return p
	}
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
		p, ok := d.partOf[key]
		if !ok {
			p = partitionOf(key, partitions)
		}
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
	if d.keys > 0 {
		base = d.eachKeyed(rng, fn)
	}
	for i := 0; d.keys == 0 && i < d.n; i++ {
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
	if sentinels && !d.noSentinels {
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

// keyStride walks the keys in a scattered order: it is prime and no key
// count of the sweep is a multiple of it, so j*keyStride mod keys visits
// every key once in keys steps.
const keyStride = 1_000_003

// eachKeyed generates a keyed data set's records (see newKeyedDataset) and
// returns the last record's base time.
func (d *dataset) eachKeyed(rng *rand.Rand, fn func(key string, ev wire.Event)) int64 {
	w := d.perWindow()
	var base int64
	for i := 0; i < d.n; i++ {
		win, j := i/w, i%w
		base = t0 + int64(win)*windowMs + int64(j)*windowMs/int64(w)
		ts := max(t0, base-rng.Int64N(d.jitter+1))
		var k int
		if j < d.keys {
			k = int(int64(j) * keyStride % int64(d.keys))
		} else {
			k = rng.IntN(d.keys)
		}
		key, emoji := d.keyName(k)
		if i == 0 {
			d.first = ts
		}
		d.last = max(d.last, ts)
		fn(key, wire.Event{UserID: "user-" + strconv.Itoa(k/len(d.emojis)), EmojiType: emoji, Timestamp: ts})
	}
	return base
}
