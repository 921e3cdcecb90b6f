package stream

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// JoinWindows bounds a stream–stream join (Kafka Streams' JoinWindows): a
// left record at time t joins the right records of its key with
// timestamps in [t-Before, t+After]. Grace is how long after a window's
// end out-of-order records are still joined; it also delays the
// non-joined results of left and outer joins, which are emitted once
// stream time has passed the end of the record's window plus Grace.
type JoinWindows struct {
	// Before is how far before a left record's time right records join it.
	Before time.Duration
	// After is how far after a left record's time right records join it.
	After time.Duration
	// Grace is how long after a window's end out-of-order records still join.
	Grace time.Duration
}

// JoinTimeDifferenceAndGrace returns windows of diff before and after
// each record with grace (Kafka Streams'
// JoinWindows.ofTimeDifferenceAndGrace).
func JoinTimeDifferenceAndGrace(diff, grace time.Duration) JoinWindows {
	return JoinWindows{Before: diff, After: diff, Grace: grace}
}

// StreamJoined names and types the stores (and, when a side's key may have
// changed, the repartition topics) of a stream–stream join (Kafka Streams'
// StreamJoined). Name prefixes the store names
// (<Name>-this-join-store, <Name>-other-join-store,
// <Name>-outer-shared-join-store) and repartition topics; zero fields take
// the streams' serdes and a generated name. Every serde is needed: the
// join stores the records of both sides.
type StreamJoined[K, V, VO any] struct {
	// Name prefixes the store and repartition topic names.
	Name string
	// KeySerde stores the keys of both sides.
	KeySerde Serde[K]
	// ValueSerde stores this side's values.
	ValueSerde Serde[V]
	// OtherValueSerde stores the other side's values.
	OtherValueSerde Serde[VO]
	// Options such as Persistent(), for the three stores.
	Options []StoreOpt
}

// JoinStreams joins two streams on their keys within windows w (Kafka
// Streams' KStream.join(KStream)): each pair of a left and a right record
// with the same key whose timestamps are within w becomes joiner(left,
// right), with the larger of the two timestamps, when the second of them
// arrives. Records are kept for w.Before + w.After + w.Grace of stream
// time. The streams must be co-partitioned (checked at start).
func JoinStreams[K, V, VO, VR any](s *Stream[K, V], other *Stream[K, VO], joiner func(v V, vo VO) VR, w JoinWindows, sj StreamJoined[K, V, VO]) *Stream[K, VR] {
	return streamStreamJoin(s, other, "KSTREAM-JOIN", innerJoin, func(v *V, vo *VO) VR { return joiner(*v, *vo) }, w, sj)
}

// LeftJoinStreams is JoinStreams that also keeps the left records that
// join nothing (Kafka Streams' KStream.leftJoin(KStream)): joiner(left,
// nil), with the left record's timestamp, once the record's window has
// closed (stream time passed its timestamp + w.After + w.Grace), as Kafka
// Streams does since 3.1; a record that arrives after its window closed is
// emitted at once.
func LeftJoinStreams[K, V, VO, VR any](s *Stream[K, V], other *Stream[K, VO], joiner func(v V, vo *VO) VR, w JoinWindows, sj StreamJoined[K, V, VO]) *Stream[K, VR] {
	return streamStreamJoin(s, other, "KSTREAM-LEFTJOIN", leftJoin, func(v *V, vo *VO) VR { return joiner(*v, vo) }, w, sj)
}

// OuterJoinStreams is LeftJoinStreams that keeps the right records that
// join nothing too (Kafka Streams' KStream.outerJoin(KStream)): joiner
// gets nil for the missing side.
func OuterJoinStreams[K, V, VO, VR any](s *Stream[K, V], other *Stream[K, VO], joiner func(v *V, vo *VO) VR, w JoinWindows, sj StreamJoined[K, V, VO]) *Stream[K, VR] {
	return streamStreamJoin(s, other, "KSTREAM-OUTERJOIN", outerJoin, joiner, w, sj)
}

// joinInput carries a record of either side into the one join processor.
type joinInput[V, VO any] struct {
	left bool
	l    V
	r    VO
}

func streamStreamJoin[K, V, VO, VR any](s *Stream[K, V], other *Stream[K, VO], prefix string, kind joinKind, joiner func(v *V, vo *VO) VR, w JoinWindows, sj StreamJoined[K, V, VO]) *Stream[K, VR] {
	b := s.b
	name := b.newName(prefix)
	if sj.Name == "" {
		sj.Name = name
	}
	if sj.KeySerde == nil {
		sj.KeySerde = s.ks
		if sj.KeySerde == nil {
			sj.KeySerde = other.ks
		}
	}
	if sj.ValueSerde == nil {
		sj.ValueSerde = s.vs
	}
	if sj.OtherValueSerde == nil {
		sj.OtherValueSerde = other.vs
	}
	if sj.KeySerde == nil || sj.ValueSerde == nil || sj.OtherValueSerde == nil {
		b.fail(fmt.Errorf("%w: %s needs the key serde and both value serdes (StreamJoined)", ErrInvalidTopology, name))
		return &Stream[K, VR]{b: b, n: s.n}
	}
	if w.Before < 0 || w.After < 0 || w.Grace < 0 || w.Before+w.After < 0 {
		b.fail(fmt.Errorf("%w: %s: join windows must not be negative (%+v)", ErrInvalidTopology, name, w))
		return &Stream[K, VR]{b: b, n: s.n}
	}
	ls := GroupByKey(s, Grouped[K, V]{Name: sj.Name + "-left", KeySerde: sj.KeySerde, ValueSerde: sj.ValueSerde}).Stream()
	rs := GroupByKey(other, Grouped[K, VO]{Name: sj.Name + "-right", KeySerde: sj.KeySerde, ValueSerde: sj.OtherValueSerde}).Stream()
	lw, rw, ow := sj.Name+"-this-join-store", sj.Name+"-other-join-store", sj.Name+"-outer-shared-join-store"
	stores := []string{lw, rw}
	b.AddStore(KeyValueStoreBuilder(lw, Bytes(), bytesListSerde{}, sj.Options...))
	b.AddStore(KeyValueStoreBuilder(rw, Bytes(), bytesListSerde{}, sj.Options...))
	if kind != innerJoin {
		b.AddStore(KeyValueStoreBuilder(ow, Bytes(), bytesListSerde{}, sj.Options...))
		stores = append(stores, ow)
	}
	toLeft := stateless(ls, name+"-THIS", false, func(ctx ProcessorContext[K, joinInput[V, VO]], r Record[K, V]) error {
		ctx.Forward(Record[K, joinInput[V, VO]]{Key: r.Key, Value: joinInput[V, VO]{left: true, l: r.Value}, Timestamp: r.Timestamp, Headers: r.Headers})
		return nil
	})
	toRight := stateless(rs, name+"-OTHER", false, func(ctx ProcessorContext[K, joinInput[V, VO]], r Record[K, VO]) error {
		ctx.Forward(Record[K, joinInput[V, VO]]{Key: r.Key, Value: joinInput[V, VO]{r: r.Value}, Timestamp: r.Timestamp, Headers: r.Headers})
		return nil
	})
	cfg := ssJoinConfig[K, V, VO, VR]{
		kind: kind, before: w.Before.Milliseconds(), after: w.After.Milliseconds(), grace: w.Grace.Milliseconds(),
		ks: sj.KeySerde, vs: sj.ValueSerde, vos: sj.OtherValueSerde, joiner: joiner,
		lw: lw, rw: rw, ow: ow,
	}
	out := addProcessor(b, name, func() Processor[K, joinInput[V, VO], K, VR] {
		return &ssJoinProc[K, V, VO, VR]{ssJoinConfig: cfg}
	}, stores, false, toLeft.n, toRight.n)
	out.ks = sj.KeySerde
	return out
}

type ssJoinConfig[K, V, VO, VR any] struct {
	kind                 joinKind
	before, after, grace int64 // ms
	ks                   Serde[K]
	vs                   Serde[V]
	vos                  Serde[VO]
	joiner               func(v *V, vo *VO) VR
	lw, rw, ow           string
}

// ssJoinProc is both sides of a stream–stream join, after Kafka Streams'
// KStreamJoinWindow and KStreamKStreamJoin processors with the outer-join
// store of KIP-633 ("spurious results fix"). Each side's records are kept
// in a window store keyed by timestamp then key (a list of values per
// timestamp and key, in arrival order); the records of a left or outer
// join that joined nothing yet wait in the shared outer store, keyed by
// timestamp, side (right before left) and key, until their window closes.
// The time tracker (stream time of both sides, the outer store's smallest
// timestamp) is in memory, as in Kafka Streams.
type ssJoinProc[K, V, VO, VR any] struct {
	ssJoinConfig[K, V, VO, VR]
	lws, rws, outer KeyValueStore[[]byte, [][]byte]
	// observed is each window store's largest timestamp (left, right).
	observed [2]int64
	// streamTime and minTime are Kafka Streams' shared TimeTracker.
	streamTime, minTime int64
}

func (p *ssJoinProc[K, V, VO, VR]) Init(ctx ProcessorContext[K, VR]) error {
	var err error
	if p.lws, err = GetKeyValueStore[[]byte, [][]byte](ctx, p.lw); err != nil {
		return err
	}
	if p.rws, err = GetKeyValueStore[[]byte, [][]byte](ctx, p.rw); err != nil {
		return err
	}
	if p.kind != innerJoin {
		if p.outer, err = GetKeyValueStore[[]byte, [][]byte](ctx, p.ow); err != nil {
			return err
		}
	}
	p.streamTime, p.minTime = -1, math.MaxInt64
	for i, st := range []KeyValueStore[[]byte, [][]byte]{p.lws, p.rws} {
		p.observed[i] = -1
		it, err := st.All()
		if err != nil {
			return err
		}
		for it.Next() {
			if ts := keyTime(it.Key()); ts > p.observed[i] {
				p.observed[i] = ts
			}
		}
		err = it.Err()
		it.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *ssJoinProc[K, V, VO, VR]) Close() error { return nil }

// timeKey is a store key: the timestamp (8 bytes, big-endian, sign bit
// flipped so negative times sort first), then rest.
func timeKey(ts int64, rest ...[]byte) []byte {
	out := binary.BigEndian.AppendUint64(nil, uint64(ts)^(1<<63))
	for _, r := range rest {
		out = append(out, r...)
	}
	return out
}

func keyTime(k []byte) int64 { return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)) }

var (
	rightSide = []byte{0}
	leftSide  = []byte{1}
)

func (p *ssJoinProc[K, V, VO, VR]) Process(ctx ProcessorContext[K, VR], r Record[K, joinInput[V, VO]]) error {
	ts := r.Timestamp.UnixMilli()
	isLeft := r.Value.left
	p.streamTime = max(p.streamTime, ts)
	kb, err := p.ks.Serialize(r.Key)
	if err != nil {
		return err
	}
	var vb []byte
	if isLeft {
		vb, err = p.vs.Serialize(r.Value.l)
	} else {
		vb, err = p.vos.Serialize(r.Value.r)
	}
	if err != nil {
		return err
	}
	before, after := p.before, p.after
	thisStore, otherStore, i := p.lws, p.rws, 0
	thisSide, otherSide := leftSide, rightSide
	if !isLeft {
		before, after = p.after, p.before
		thisStore, otherStore, i = p.rws, p.lws, 1
		thisSide, otherSide = rightSide, leftSide
	}
	retention := p.before + p.after + p.grace
	timeFrom, timeTo := max(0, ts-before), max(0, ts+after)
	// The stores are written in an order that does not depend on their
	// state: first the appends (deduplicated against redelivery by their
	// position among the record's writes), then the deletions. So a
	// replayed record after a crash is recognised even though the join's
	// in-memory time tracker, and so what it deletes, may differ.

	// Look the record up in the other side's window store (its own
	// retention bounds what is still there).
	type hit struct {
		ts   int64
		vals [][]byte
	}
	var hits []hit
	if from := max(timeFrom, p.observed[1-i]-retention+1); timeTo >= from {
		it, err := otherStore.Range(timeKey(from), timeKey(timeTo+1))
		if err != nil {
			return err
		}
		for it.Next() {
			k := it.Key()
			if len(k) == 8+len(kb) && keyTime(k) <= timeTo && bytes.Equal(k[8:], kb) {
				hits = append(hits, hit{keyTime(k), it.Value()})
			}
		}
		err = it.Err()
		it.Close()
		if err != nil {
			return err
		}
	}
	// Kafka Streams' KStreamJoinWindow: keep the record in this side's
	// window store, unless it is already older than the retention.
	p.observed[i] = max(p.observed[i], ts)
	if ts > p.observed[i]-retention {
		if _, _, err := thisStore.Update(timeKey(ts, kb), func(old [][]byte, _ bool) ([][]byte, error) {
			return append(old, vb), nil
		}); err != nil {
			return err
		}
	}
	outerSide := p.kind == outerJoin || p.kind == leftJoin && isLeft
	matched := len(hits) > 0
	wait := outerSide && !matched && p.outer != nil && timeTo >= p.streamTime
	var waitKey []byte
	if wait {
		waitKey = timeKey(ts, thisSide, kb)
		if _, _, err := p.outer.Update(waitKey, func(old [][]byte, _ bool) ([][]byte, error) {
			return append(old, vb), nil
		}); err != nil {
			return err
		}
	}
	if p.outer != nil && ts == p.streamTime {
		if err := p.emitNonJoined(ctx, r, after, waitKey); err != nil {
			return err
		}
	}
	for _, h := range hits {
		if p.outer != nil {
			ok := timeKey(h.ts, otherSide, kb)
			if _, found, err := p.outer.Get(ok); err != nil {
				return err
			} else if found {
				if err := p.outer.Delete(ok); err != nil {
					return err
				}
			}
		}
		for _, ob := range h.vals {
			out, err := p.join(isLeft, r.Value, ob)
			if err != nil {
				return err
			}
			ctx.Forward(Record[K, VR]{Key: r.Key, Value: out, Timestamp: time.UnixMilli(max(ts, h.ts)), Headers: r.Headers})
		}
	}
	switch {
	case wait:
		p.minTime = min(p.minTime, ts)
	case outerSide && !matched:
		out, err := p.join(isLeft, r.Value, nil)
		if err != nil {
			return err
		}
		ctx.Forward(Record[K, VR]{Key: r.Key, Value: out, Timestamp: r.Timestamp, Headers: r.Headers})
	}
	return p.expire(thisStore, p.observed[i]-retention)
}

// expire deletes the window store's entries at or before cutoff.
func (p *ssJoinProc[K, V, VO, VR]) expire(st KeyValueStore[[]byte, [][]byte], cutoff int64) error {
	it, err := st.Range(timeKey(math.MinInt64), timeKey(cutoff+1))
	if err != nil {
		return err
	}
	var old [][]byte
	for it.Next() {
		if keyTime(it.Key()) <= cutoff {
			old = append(old, bytes.Clone(it.Key()))
		}
	}
	err = it.Err()
	it.Close()
	if err != nil {
		return err
	}
	for _, k := range old {
		if err := st.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// join applies the joiner to this record's value and another record's
// serialized value (nil: none).
func (p *ssJoinProc[K, V, VO, VR]) join(isLeft bool, in joinInput[V, VO], other []byte) (VR, error) {
	var zero VR
	if isLeft {
		if other == nil {
			return p.joiner(&in.l, nil), nil
		}
		vo, err := p.vos.Deserialize(other)
		if err != nil {
			return zero, err
		}
		return p.joiner(&in.l, &vo), nil
	}
	if other == nil {
		return p.joiner(nil, &in.r), nil
	}
	v, err := p.vs.Deserialize(other)
	if err != nil {
		return zero, err
	}
	return p.joiner(&v, &in.r), nil
}

// emitNonJoined emits the waiting records whose windows have closed, in
// the outer store's order (Kafka Streams' emitNonJoinedOuterRecords, with
// its emit interval at 0: checked on every record that advances stream
// time).
//
// skip is the outer-store key the current record was just appended to (or
// nil): Kafka Streams appends it after this scan, so its last value is not
// visited.
func (p *ssJoinProc[K, V, VO, VR]) emitNonJoined(ctx ProcessorContext[K, VR], r Record[K, joinInput[V, VO]], after int64, skip []byte) error {
	if p.minTime+after+p.grace >= p.streamTime {
		return nil
	}
	p.minTime = math.MaxInt64
	it, err := p.outer.All()
	if err != nil {
		return err
	}
	type entry struct {
		key  []byte
		vals [][]byte
	}
	var emit []entry
	leftOpen, rightOpen := false, false
	// Kafka Streams' iterator returns each value of a list separately;
	// minTime ends at the value where the scan stops.
scan:
	for it.Next() {
		k := it.Key()
		ets := keyTime(k)
		isLeft := k[8] == leftSide[0]
		look := p.before
		if isLeft {
			look = p.after
		}
		n := len(it.Value())
		if skip != nil && bytes.Equal(k, skip) {
			n-- // the current record, appended before the scan
		}
		for range n {
			p.minTime = ets
			if leftOpen && rightOpen {
				break scan
			}
			if p.minTime+look+p.grace >= p.streamTime {
				if isLeft {
					leftOpen = true
				} else {
					rightOpen = true
				}
				continue
			}
		}
		if n > 0 && ets+look+p.grace < p.streamTime {
			emit = append(emit, entry{bytes.Clone(k), it.Value()})
		}
	}
	err = it.Err()
	it.Close()
	if err != nil {
		return err
	}
	for _, e := range emit {
		key, err := p.ks.Deserialize(e.key[9:])
		if err != nil {
			return err
		}
		isLeft := e.key[8] == leftSide[0]
		for _, vb := range e.vals {
			var out VR
			if isLeft {
				v, err := p.vs.Deserialize(vb)
				if err != nil {
					return err
				}
				out = p.joiner(&v, nil)
			} else {
				vo, err := p.vos.Deserialize(vb)
				if err != nil {
					return err
				}
				out = p.joiner(nil, &vo)
			}
			ctx.Forward(Record[K, VR]{Key: key, Value: out, Timestamp: time.UnixMilli(keyTime(e.key)), Headers: r.Headers})
		}
		if err := p.outer.Delete(e.key); err != nil {
			return err
		}
	}
	return nil
}

// bytesListSerde stores a list of byte strings: each as a 4-byte
// big-endian length and the bytes.
type bytesListSerde struct{}

func (bytesListSerde) Serialize(v [][]byte) ([]byte, error) {
	n := 0
	for _, b := range v {
		n += 4 + len(b)
	}
	out := make([]byte, 0, n)
	for _, b := range v {
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	return out, nil
}

func (bytesListSerde) Deserialize(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, &SerdeError{Format: "byte list", Err: fmt.Errorf("%d trailing bytes", len(b))}
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return nil, &SerdeError{Format: "byte list", Err: fmt.Errorf("element of %d bytes in %d", n, len(b)-4)}
		}
		out = append(out, bytes.Clone(b[4:4+n]))
		b = b[4+n:]
	}
	return out, nil
}
