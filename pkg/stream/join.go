package stream

import (
	"fmt"
	"time"
)

// Joined names and types the repartition topic a stream–table join needs
// when the stream's key may have changed (Kafka Streams' Joined): the
// stream is then written to <application id>-<Name>-repartition with
// KeySerde and ValueSerde, so each key meets the table partition that
// holds it. Zero fields take the stream's serdes and a generated name.
// With a versioned table, Grace holds the stream's records back (Kafka
// Streams' Joined.withGracePeriod).
type Joined[K, V any] struct {
	// Name names the repartition topic (default: a generated node name)
	// and, with "-Buffer", the grace buffer's store.
	Name string
	// KeySerde writes and reads the keys in the repartition topic and the
	// grace buffer.
	KeySerde Serde[K]
	// ValueSerde writes and reads the values in the repartition topic and
	// the grace buffer.
	ValueSerde Serde[V]
	// Grace, when positive, holds each stream record in a buffer (a store
	// with a changelog, named <Name>-Buffer) until the stream time of the
	// join's stream records passes the record's timestamp by Grace, then
	// joins it with the table as of its timestamp: a table update up to
	// Grace late (in stream time) is still seen. Buffered records are
	// joined in timestamp order (then serialized key, then arrival). A
	// record already more than Grace behind that stream time is joined at
	// once. The table must be versioned (VersionedTableSource), with a
	// history retention of at least Grace; zero joins every record when it
	// arrives.
	Grace time.Duration
}

// JoinTable joins each record of s with the value of its key in t (Kafka
// Streams' KStream.join(KTable)): a record whose key has no value in t is
// dropped, the others become joiner(value, table value) with the record's
// timestamp. Updates of t produce nothing; each record sees t as it is
// when the record is processed — for a versioned table
// (VersionedTableSource), the value its key had at the record's
// timestamp, later held back by the Joined's Grace. s and t must be
// co-partitioned (same partition count and partitioner); the check runs
// at start.
func JoinTable[K, V, VT, VR any](s *Stream[K, V], t *Table[K, VT], joiner func(v V, vt VT) VR, j ...Joined[K, V]) *Stream[K, VR] {
	return streamTableJoin(s, t, "KSTREAM-JOIN", false, func(v V, vt *VT) VR { return joiner(v, *vt) }, j)
}

// LeftJoinTable is JoinTable that keeps the records whose key has no value
// in t: joiner gets nil for the table value (Kafka Streams'
// KStream.leftJoin(KTable)).
func LeftJoinTable[K, V, VT, VR any](s *Stream[K, V], t *Table[K, VT], joiner func(v V, vt *VT) VR, j ...Joined[K, V]) *Stream[K, VR] {
	return streamTableJoin(s, t, "KSTREAM-LEFTJOIN", true, joiner, j)
}

func streamTableJoin[K, V, VT, VR any](s *Stream[K, V], t *Table[K, VT], prefix string, left bool, joiner func(v V, vt *VT) VR, j []Joined[K, V]) *Stream[K, VR] {
	var cfg Joined[K, V]
	if len(j) > 0 {
		cfg = j[0]
	}
	name := s.b.newName(prefix)
	if cfg.Name == "" {
		cfg.Name = name
	}
	get := t.valueGetter()
	if get == nil {
		s.b.fail(fmt.Errorf("%w: %s: table %s cannot be read by key", ErrInvalidTopology, name, t.n.name))
		return &Stream[K, VR]{b: s.b, n: s.n}
	}
	switch {
	case cfg.Grace < 0:
		s.b.fail(fmt.Errorf("%w: %s: a negative grace period (%v)", ErrInvalidTopology, name, cfg.Grace))
		return &Stream[K, VR]{b: s.b, n: s.n}
	case cfg.Grace > 0 && get.asOf == nil:
		s.b.fail(fmt.Errorf("%w: %s: a grace period needs a versioned table (VersionedTableSource), and table %s is not", ErrInvalidTopology, name, t.n.name))
		return &Stream[K, VR]{b: s.b, n: s.n}
	case cfg.Grace > get.history:
		// As Kafka Streams: "History retention must be at least grace period."
		s.b.fail(fmt.Errorf("%w: %s: the grace period (%v) is longer than table %s's history retention (%v)", ErrInvalidTopology, name, cfg.Grace, t.n.name, get.history))
		return &Stream[K, VR]{b: s.b, n: s.n}
	}
	// A stream whose key may have changed is repartitioned first, as for a
	// grouping.
	in := GroupByKey(s, Grouped[K, V]{Name: cfg.Name, KeySerde: cfg.KeySerde, ValueSerde: cfg.ValueSerde}).Stream()
	stores := get.stores
	var buffer *graceBuffer[K, V]
	if cfg.Grace > 0 {
		buffer = &graceBuffer[K, V]{store: cfg.Name + "-Buffer", grace: cfg.Grace.Milliseconds(), ks: cfg.KeySerde, vs: cfg.ValueSerde}
		if buffer.ks == nil {
			buffer.ks = in.ks
		}
		if buffer.vs == nil {
			buffer.vs = in.vs
		}
		if buffer.ks == nil || buffer.vs == nil {
			s.b.fail(fmt.Errorf("%w: %s: the grace buffer needs the stream's key and value serdes (Joined)", ErrInvalidTopology, name))
			return &Stream[K, VR]{b: s.b, n: s.n}
		}
		s.b.AddStore(KeyValueStoreBuilder(buffer.store, Bytes(), Bytes()))
		stores = append([]string{buffer.store}, stores...)
	}
	out := addProcessor(s.b, name, func() Processor[K, V, K, VR] {
		var lookup func(k K, ts int64) (timedValue[VT], bool, error)
		join := func(ctx ProcessorContext[K, VR], r Record[K, V]) error {
			tv, found, err := lookup(r.Key, r.Timestamp.UnixMilli())
			if err != nil {
				return err
			}
			var vt *VT
			if found {
				vt = &tv.value
			} else if !left {
				return nil
			}
			ctx.Forward(Record[K, VR]{Key: r.Key, Value: joiner(r.Value, vt), Timestamp: r.Timestamp, Headers: r.Headers})
			return nil
		}
		var buf *graceBuffer[K, V]
		if buffer != nil {
			b := *buffer
			buf = &b
		}
		return &funcProcessor[K, V, K, VR]{
			init: func(ctx ProcessorContext[K, VR]) error {
				// A versioned table is read as of the record's timestamp
				// (Kafka Streams' KStreamKTableJoinProcessor).
				if get.asOf != nil {
					var err error
					if lookup, err = get.asOf(ctx); err != nil {
						return err
					}
				} else {
					latest, err := get.open(ctx)
					if err != nil {
						return err
					}
					lookup = func(k K, _ int64) (timedValue[VT], bool, error) { return latest(k) }
				}
				if buf != nil {
					return buf.init(ctx)
				}
				return nil
			},
			process: func(ctx ProcessorContext[K, VR], r Record[K, V]) error {
				if buf == nil {
					return join(ctx, r)
				}
				return buf.process(ctx, r, func(r Record[K, V]) error { return join(ctx, r) })
			},
		}
	}, stores, false, in.n)
	out.ks = in.ks
	return out
}

// funcProcessor is a Processor made of functions.
type funcProcessor[KIn, VIn, KOut, VOut any] struct {
	init    func(ctx ProcessorContext[KOut, VOut]) error
	process func(ctx ProcessorContext[KOut, VOut], r Record[KIn, VIn]) error
}

func (p *funcProcessor[KIn, VIn, KOut, VOut]) Init(ctx ProcessorContext[KOut, VOut]) error {
	if p.init == nil {
		return nil
	}
	return p.init(ctx)
}

func (p *funcProcessor[KIn, VIn, KOut, VOut]) Process(ctx ProcessorContext[KOut, VOut], r Record[KIn, VIn]) error {
	return p.process(ctx, r)
}

func (p *funcProcessor[KIn, VIn, KOut, VOut]) Close() error { return nil }

// joinKind is inner, left or outer.
type joinKind int

const (
	innerJoin joinKind = iota
	leftJoin
	outerJoin
)

// JoinTables joins two tables on their keys (Kafka Streams'
// KTable.join(KTable)): the result has a value for a key when both tables
// have one, joiner(value, other value). An update of either side is
// joined with the other side's current value; the result's timestamp is
// the larger of the update's and the other side's value's. As in Kafka
// Streams, the deletion of a key that the other side has is forwarded as a
// deletion (a nil value in ToStreamWithTombstones) even when no joined
// value existed. The tables must be co-partitioned (checked at start). The
// result is not materialized (its values are computed from both sides
// when read by a later join).
func JoinTables[K, V, VO, VR any](t *Table[K, V], other *Table[K, VO], joiner func(v V, vo VO) VR) *Table[K, VR] {
	return tableTableJoin(t, other, "KTABLE-JOIN", innerJoin, func(v *V, vo *VO) VR { return joiner(*v, *vo) })
}

// LeftJoinTables joins two tables keeping every key of t (Kafka Streams'
// KTable.leftJoin(KTable)): joiner gets nil for a missing other value. See
// JoinTables for timestamps and deletions.
func LeftJoinTables[K, V, VO, VR any](t *Table[K, V], other *Table[K, VO], joiner func(v V, vo *VO) VR) *Table[K, VR] {
	return tableTableJoin(t, other, "KTABLE-LEFTJOIN", leftJoin, func(v *V, vo *VO) VR { return joiner(*v, vo) })
}

// OuterJoinTables joins two tables keeping every key of either (Kafka
// Streams' KTable.outerJoin(KTable)): joiner gets nil for a missing value.
// See JoinTables for timestamps and deletions.
func OuterJoinTables[K, V, VO, VR any](t *Table[K, V], other *Table[K, VO], joiner func(v *V, vo *VO) VR) *Table[K, VR] {
	return tableTableJoin(t, other, "KTABLE-OUTERJOIN", outerJoin, joiner)
}

func tableTableJoin[K, V, VO, VR any](t *Table[K, V], other *Table[K, VO], prefix string, kind joinKind, joiner func(v *V, vo *VO) VR) *Table[K, VR] {
	b := t.b
	name := b.newName(prefix)
	lm, rm := t.changes(), other.changes()
	lg, rg := t.valueGetter(), other.valueGetter()
	fail := func(err error) *Table[K, VR] {
		b.fail(err)
		return &Table[K, VR]{b: b, n: t.n, meta: &tableMeta{b: b, chg: t.n}}
	}
	for _, g := range []struct {
		noTS string
		ok   bool
	}{{lgNoTS(lg), lg != nil}, {lgNoTS(rg), rg != nil}} {
		if !g.ok {
			return fail(fmt.Errorf("%w: %s: a table cannot be read by key", ErrInvalidTopology, name))
		}
		if g.noTS != "" {
			return fail(fmt.Errorf("%w: %s: %s", ErrInvalidTopology, name, g.noTS))
		}
	}
	// Both sides forward their old values, as Kafka Streams' table joins
	// ask: a deletion is joined only when it removes a value.
	lm.enableSendingOldValues()
	rm.enableSendingOldValues()
	meta := &tableMeta{b: b, up: []*tableMeta{lm, rm}}
	// thisSide handles the updates of one side; flip puts the values back
	// in (left, right) order for the joiner.
	leftProc := tableJoinSide(b, name+"-LEFT", lm.chg, rg, meta, kind, false, joiner)
	rightProc := tableJoinSide(b, name+"-RIGHT", rm.chg, lg, meta, kind, true,
		func(vo *VO, v *V) VR { return joiner(v, vo) })
	merge := addProcessor(b, name+"-MERGE", func() Processor[K, change[VR], K, change[VR]] {
		return passThrough[K, change[VR]]()
	}, nil, false, leftProc, rightProc)
	meta.chg = merge.n
	meta.getter = joinedGetter(lg, rg, kind, joiner)
	return &Table[K, VR]{b: b, n: merge.n, ks: t.ks, meta: meta}
}

func lgNoTS[K, V any](g *valueGetter[K, V]) string {
	if g == nil {
		return ""
	}
	return g.noTS
}

// tableJoinSide adds the processor for the updates of one side of a
// table–table join (Kafka Streams' KTableKTableInnerJoin, LeftJoin,
// RightJoin and OuterJoin processors), reading the other side with get.
// right: this is the right side (joiner takes this side's value first
// all the same).
func tableJoinSide[K, V, VO, VR any](b *Builder, name string, from *node, get *valueGetter[K, VO], meta *tableMeta, kind joinKind, right bool, joiner func(v *V, vo *VO) VR) *node {
	// keepThis: an update of this side is joined even when the other side
	// has no value (the left side of a left join, both sides of an outer
	// join).
	keepThis := kind == outerJoin || (kind == leftJoin && !right)
	// exists tells whether the join has a value for a key, from which
	// sides have one.
	exists := func(this, other bool) bool {
		l, r := this, other
		if right {
			l, r = other, this
		}
		switch kind {
		case innerJoin:
			return l && r
		case leftJoin:
			return l
		}
		return l || r
	}
	s := &Stream[K, change[V]]{b: b, n: from}
	out := addProcessor(b, name, func() Processor[K, change[V], K, change[VR]] {
		var lookup func(k K) (timedValue[VO], bool, error)
		return &funcProcessor[K, change[V], K, change[VR]]{
			init: func(ctx ProcessorContext[K, change[VR]]) (err error) {
				lookup, err = get.open(ctx)
				return err
			},
			process: func(ctx ProcessorContext[K, change[VR]], r Record[K, change[V]]) error {
				ov, found, err := lookup(r.Key)
				if err != nil {
					return err
				}
				c := r.Value
				ts := r.Timestamp
				var vo *VO
				if found {
					vo = &ov.value
					if ots := time.UnixMilli(ov.ts); ots.After(ts) {
						ts = ots
					}
				} else if !keepThis || (c.New == nil && c.Old == nil) {
					// Nothing joins with this update, and it removes nothing.
					return nil
				}
				join := func(v *V) *VR {
					if !exists(v != nil, vo != nil) {
						return nil
					}
					r := joiner(v, vo)
					return &r
				}
				out := change[VR]{New: join(c.New)}
				if meta.sendOld {
					out.Old = join(c.Old)
				}
				ctx.Forward(Record[K, change[VR]]{Key: r.Key, Value: out, Timestamp: ts, Headers: r.Headers})
				return nil
			},
		}
	}, get.stores, false, s.n)
	return out.n
}

// joinedGetter computes a table–table join's value from both sides.
func joinedGetter[K, V, VO, VR any](lg *valueGetter[K, V], rg *valueGetter[K, VO], kind joinKind, joiner func(v *V, vo *VO) VR) *valueGetter[K, VR] {
	stores := append(append([]string{}, lg.stores...), rg.stores...)
	return &valueGetter[K, VR]{stores: stores, open: func(ctx storeCtx) (func(k K) (timedValue[VR], bool, error), error) {
		lget, err := lg.open(ctx)
		if err != nil {
			return nil, err
		}
		rget, err := rg.open(ctx)
		if err != nil {
			return nil, err
		}
		return func(k K) (timedValue[VR], bool, error) {
			l, lok, err := lget(k)
			if err != nil {
				return timedValue[VR]{}, false, err
			}
			r, rok, err := rget(k)
			if err != nil {
				return timedValue[VR]{}, false, err
			}
			var lv *V
			var rv *VO
			if lok {
				lv = &l.value
			}
			if rok {
				rv = &r.value
			}
			switch {
			case lok && rok:
			case lok && kind != innerJoin:
			case rok && kind == outerJoin:
			default:
				return timedValue[VR]{}, false, nil
			}
			ts := l.ts
			if rok && (!lok || r.ts > ts) {
				ts = r.ts
			}
			return timedValue[VR]{ts: ts, value: joiner(lv, rv)}, true, nil
		}, nil
	}}
}
