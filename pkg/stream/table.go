package stream

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// change is one update of a table, as Kafka Streams' Change: the new value
// (nil: the key was deleted) and, when a downstream operation asked for
// it, the value it replaces (nil: none, or not asked for).
type change[V any] struct {
	New, Old *V
}

// tableMeta is what the operations of a table chain share while the
// topology is built. Like Kafka Streams, a table forwards old values only
// when an operation downstream needs them (a KGroupedTable's subtractor):
// that operation enables them on its table and on every table upstream.
type tableMeta struct {
	b *Builder
	// chg is the node that forwards the table's updates as Record[K, change[V]].
	chg *node
	// sendOld is read by the processors when a task is built, after the DSL
	// calls, so later operations can still turn it on.
	sendOld bool
	up      []*tableMeta
	// noOld says why old values cannot be sent (a table made by a stream
	// aggregation, whose updates carry no old value), or is empty.
	noOld string
	// getter is the table's *valueGetter[K, V]: how a join reads it.
	getter any
}

// storeCtx hands out a task's stores (a ProcessorContext).
type storeCtx interface {
	Store(string) (StateStore, error)
}

// valueGetter reads a table's current value and timestamp by key (Kafka
// Streams' KTableValueGetter): from its store, or computed from the
// table it derives from.
type valueGetter[K, V any] struct {
	stores []string
	// noTS says why the table's timestamps are unknown, or is empty.
	noTS string
	open func(ctx storeCtx) (func(k K) (timedValue[V], bool, error), error)
	// asOf, for a versioned table (nil otherwise), reads the value a key
	// had at a time (ms), as Kafka Streams' KTableValueGetter.get(key,
	// asOfTimestamp) does.
	asOf func(ctx storeCtx) (func(k K, ts int64) (timedValue[V], bool, error), error)
	// history is a versioned table's history retention.
	history time.Duration
}

// storeGetter reads a table store.
func storeGetter[K, V any](store string) *valueGetter[K, V] {
	return &valueGetter[K, V]{stores: []string{store}, open: func(ctx storeCtx) (func(k K) (timedValue[V], bool, error), error) {
		s, err := getTableStore[K, V](ctx, store)
		if err != nil {
			return nil, err
		}
		return s.getTimed, nil
	}}
}

// derivedGetter computes a table's value from its parent's with fn (nil:
// no value).
func derivedGetter[K, V, V2 any](up *valueGetter[K, V], fn func(k K, v *V) *V2) *valueGetter[K, V2] {
	if up == nil {
		return nil
	}
	derive := func(k K, tv timedValue[V], found bool, err error) (timedValue[V2], bool, error) {
		if err != nil || !found {
			return timedValue[V2]{}, false, err
		}
		v := fn(k, &tv.value)
		if v == nil {
			return timedValue[V2]{}, false, nil
		}
		return timedValue[V2]{ts: tv.ts, value: *v}, true, nil
	}
	g := &valueGetter[K, V2]{stores: up.stores, noTS: up.noTS, open: func(ctx storeCtx) (func(k K) (timedValue[V2], bool, error), error) {
		get, err := up.open(ctx)
		if err != nil {
			return nil, err
		}
		return func(k K) (timedValue[V2], bool, error) {
			tv, found, err := get(k)
			return derive(k, tv, found, err)
		}, nil
	}}
	if up.asOf != nil {
		g.history = up.history
		g.asOf = func(ctx storeCtx) (func(k K, ts int64) (timedValue[V2], bool, error), error) {
			get, err := up.asOf(ctx)
			if err != nil {
				return nil, err
			}
			return func(k K, ts int64) (timedValue[V2], bool, error) {
				tv, found, err := get(k, ts)
				return derive(k, tv, found, err)
			}, nil
		}
	}
	return g
}

// valueGetter returns how to read t by key, or nil.
func (t *Table[K, V]) valueGetter() *valueGetter[K, V] {
	g, _ := t.changes().getter.(*valueGetter[K, V])
	return g
}

func (m *tableMeta) enableSendingOldValues() {
	if m.noOld != "" {
		m.b.fail(fmt.Errorf("%w: %s", ErrInvalidTopology, m.noOld))
		return
	}
	m.sendOld = true
	for _, u := range m.up {
		u.enableSendingOldValues()
	}
}

// changes returns the node forwarding t's updates as changes, and t's meta.
// A table made by a stream aggregation (Count, Aggregate, Reduce) gets a
// converting node the first time.
func (t *Table[K, V]) changes() *tableMeta {
	if t.meta != nil {
		return t.meta
	}
	if t.conv == nil {
		s := &Stream[K, V]{b: t.b, n: t.n}
		out := stateless(s, "KTABLE-CHANGES", false, func(ctx ProcessorContext[K, change[V]], r Record[K, V]) error {
			v := r.Value
			ctx.Forward(Record[K, change[V]]{Key: r.Key, Value: change[V]{New: &v}, Timestamp: r.Timestamp, Headers: r.Headers})
			return nil
		})
		t.conv = &tableMeta{b: t.b, chg: out.n,
			noOld: fmt.Sprintf("table %s comes from a stream aggregation, whose updates carry no old values: grouping it again is not supported yet", t.n.name)}
		if t.store != "" {
			store := t.store
			t.conv.getter = &valueGetter[K, V]{stores: []string{store},
				noTS: fmt.Sprintf("table %s comes from a stream aggregation, whose store keeps no timestamps: joining it with a table is not supported yet", t.n.name),
				open: func(ctx storeCtx) (func(k K) (timedValue[V], bool, error), error) {
					s, err := GetKeyValueStore[K, V](ctx, store)
					if err != nil {
						return nil, err
					}
					return func(k K) (timedValue[V], bool, error) {
						v, found, err := s.Get(k)
						return timedValue[V]{value: v}, found, err
					}, nil
				}}
		}
	}
	return t.conv
}

// TombstoneSerde wraps s for values that may be absent: nil is written as a
// null value (a Kafka tombstone) and a null value is read as nil. Use it to
// write the stream of ToStreamWithTombstones, or to read a topic with
// tombstones as a Stream.
func TombstoneSerde[V any](s Serde[V]) Serde[*V] { return tombstoneSerde[V]{s} }

type tombstoneSerde[V any] struct{ s Serde[V] }

func (t tombstoneSerde[V]) Serialize(v *V) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	b, err := t.s.Serialize(*v)
	if err == nil && b == nil {
		b = []byte{} // a value, not a tombstone
	}
	return b, err
}

func (t tombstoneSerde[V]) Deserialize(b []byte) (*V, error) {
	if b == nil {
		return nil, nil
	}
	v, err := t.s.Deserialize(b)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// changeSerde writes a change to a repartition topic: a flags byte (1: new
// value present, 2: old value present), the new value's length (4 bytes,
// big-endian) and bytes, then the old value's bytes.
type changeSerde[V any] struct{ s Serde[V] }

func (c changeSerde[V]) Serialize(v change[V]) ([]byte, error) {
	var flags byte
	var nb, ob []byte
	var err error
	if v.New != nil {
		flags |= 1
		if nb, err = c.s.Serialize(*v.New); err != nil {
			return nil, err
		}
	}
	if v.Old != nil {
		flags |= 2
		if ob, err = c.s.Serialize(*v.Old); err != nil {
			return nil, err
		}
	}
	out := make([]byte, 5, 5+len(nb)+len(ob))
	out[0] = flags
	binary.BigEndian.PutUint32(out[1:], uint32(len(nb)))
	return append(append(out, nb...), ob...), nil
}

func (c changeSerde[V]) Deserialize(b []byte) (change[V], error) {
	var out change[V]
	if len(b) < 5 || b[0]&^3 != 0 {
		return out, &SerdeError{Format: "table change", Err: fmt.Errorf("bad header in %d bytes", len(b))}
	}
	n := binary.BigEndian.Uint32(b[1:])
	if uint64(n) > uint64(len(b)-5) {
		return out, &SerdeError{Format: "table change", Err: fmt.Errorf("new value of %d bytes in %d", n, len(b))}
	}
	if b[0]&1 != 0 {
		v, err := c.s.Deserialize(b[5 : 5+n])
		if err != nil {
			return out, err
		}
		out.New = &v
	}
	if b[0]&2 != 0 {
		v, err := c.s.Deserialize(b[5+n:])
		if err != nil {
			return out, err
		}
		out.Old = &v
	}
	return out, nil
}

// TableSource adds a table read from topic (Kafka Streams'
// StreamsBuilder.table): the latest value per key, materialized in a
// key-value store that QueryStore[K, V] reads (name it with m's StoreName;
// by default <node>-STATE-STORE). A record with a null value (a tombstone)
// deletes its key; a record with a null key is dropped (counted in
// stream_dropped_records_total{reason="null key"}). Every update is
// forwarded with the record's timestamp, a deletion as a nil value (see
// ToStreamWithTombstones). The topic should be compacted.
func TableSource[K, V any](b *Builder, topic string, keySerde Serde[K], valueSerde Serde[V], m ...Materialized[K, V]) *Table[K, V] {
	var cfg Materialized[K, V]
	if len(m) > 0 {
		cfg = m[0]
	}
	if cfg.KeySerde == nil {
		cfg.KeySerde = keySerde
	}
	if cfg.ValueSerde == nil {
		cfg.ValueSerde = valueSerde
	}
	if keySerde == nil || valueSerde == nil || cfg.KeySerde == nil || cfg.ValueSerde == nil {
		b.fail(fmt.Errorf("%w: table %q needs a key and a value serde", ErrInvalidTopology, topic))
		return &Table[K, V]{b: b, n: &node{name: "invalid"}, meta: &tableMeta{b: b}}
	}
	src := source(b, topic, false, TombstoneSerde(keySerde), TombstoneSerde(valueSerde))
	name := b.newName("KTABLE-SOURCE")
	if cfg.StoreName == "" {
		cfg.StoreName = name + "-STATE-STORE"
	}
	b.AddStore(tableStoreBuilder(cfg.StoreName, cfg.KeySerde, cfg.ValueSerde, cfg.Options...))
	store := cfg.StoreName
	meta := &tableMeta{b: b, getter: storeGetter[K, V](store)}
	out := addProcessor(b, name, func() Processor[*K, *V, K, change[V]] {
		return &tableSourceProc[K, V]{store: store, meta: meta}
	}, []string{store}, false, src.n)
	meta.chg = out.n
	return &Table[K, V]{b: b, n: out.n, ks: cfg.KeySerde, vs: cfg.ValueSerde, store: store, meta: meta}
}

type tableSourceProc[K, V any] struct {
	store string
	meta  *tableMeta
	s     *tableStore[K, V]
}

func (p *tableSourceProc[K, V]) Init(ctx ProcessorContext[K, change[V]]) (err error) {
	p.s, err = getTableStore[K, V](ctx, p.store)
	return err
}

func (p *tableSourceProc[K, V]) Process(ctx ProcessorContext[K, change[V]], r Record[*K, *V]) error {
	if r.Key == nil {
		ctx.RecordDropped("null key")
		return nil
	}
	k := *r.Key
	old, found, err := p.s.getTimed(k)
	if err != nil {
		return err
	}
	if r.Value == nil {
		err = p.s.delete(k)
	} else {
		err = p.s.put(k, *r.Value, r.Timestamp)
	}
	if err != nil {
		return err
	}
	c := change[V]{New: r.Value}
	if p.meta.sendOld && found {
		c.Old = &old.value
	}
	ctx.Forward(Record[K, change[V]]{Key: k, Value: c, Timestamp: r.Timestamp, Headers: r.Headers})
	return nil
}

func (p *tableSourceProc[K, V]) Close() error { return nil }

// tableOp adds a stateless table operation: fn maps one change to the
// change to forward, or ok false to forward nothing. It reads the new
// table's meta (sendOld) when the task is built.
func tableOp[K, V, V2 any](t *Table[K, V], prefix string, fn func(meta *tableMeta, k K, c change[V]) (change[V2], bool)) (*node, *tableMeta) {
	up := t.changes()
	meta := &tableMeta{b: t.b, up: []*tableMeta{up}}
	s := &Stream[K, change[V]]{b: t.b, n: up.chg}
	out := stateless(s, prefix, false, func(ctx ProcessorContext[K, change[V2]], r Record[K, change[V]]) error {
		if c, ok := fn(meta, r.Key, r.Value); ok {
			ctx.Forward(Record[K, change[V2]]{Key: r.Key, Value: c, Timestamp: r.Timestamp, Headers: r.Headers})
		}
		return nil
	})
	meta.chg = out.n
	return out.n, meta
}

// Filter returns the table of the entries for which pred is true (Kafka
// Streams' KTable.filter). As there, an update that does not match is
// forwarded as a deletion of its key (a nil value in
// ToStreamWithTombstones), since it may replace a value that matched; when
// an operation downstream asks for old values (GroupTableBy), an update
// that neither matches nor replaces a match is not forwarded. The result is
// not materialized: StoreName is empty.
func (t *Table[K, V]) Filter(pred func(k K, v V) bool) *Table[K, V] {
	return t.filter("KTABLE-FILTER", pred, false)
}

// FilterNot returns the table of the entries for which pred is false (Kafka
// Streams' KTable.filterNot); see Filter.
func (t *Table[K, V]) FilterNot(pred func(k K, v V) bool) *Table[K, V] {
	return t.filter("KTABLE-FILTER", pred, true)
}

func (t *Table[K, V]) filter(prefix string, pred func(k K, v V) bool, not bool) *Table[K, V] {
	keep := func(k K, v *V) *V {
		if v != nil && pred(k, *v) != not {
			return v
		}
		return nil
	}
	n, meta := tableOp(t, prefix, func(meta *tableMeta, k K, c change[V]) (change[V], bool) {
		out := change[V]{New: keep(k, c.New)}
		if meta.sendOld {
			out.Old = keep(k, c.Old)
			if out.New == nil && out.Old == nil {
				return out, false
			}
		}
		return out, true
	})
	meta.getter = derivedGetter(t.valueGetter(), keep)
	return &Table[K, V]{b: t.b, n: n, ks: t.ks, vs: t.vs, meta: meta}
}

// MapTableValues returns the table of t's values transformed by fn (Kafka
// Streams' KTable.mapValues); deletions stay deletions and timestamps stay.
// valueSerde, when given, is the new values' serde (needed only by
// operations that serialize them). The result is not materialized.
func MapTableValues[K, V, V2 any](t *Table[K, V], fn func(k K, v V) V2, valueSerde ...Serde[V2]) *Table[K, V2] {
	apply := func(k K, v *V) *V2 {
		if v == nil {
			return nil
		}
		out := fn(k, *v)
		return &out
	}
	n, meta := tableOp(t, "KTABLE-MAPVALUES", func(meta *tableMeta, k K, c change[V]) (change[V2], bool) {
		out := change[V2]{New: apply(k, c.New)}
		if meta.sendOld {
			out.Old = apply(k, c.Old)
		}
		return out, true
	})
	meta.getter = derivedGetter(t.valueGetter(), apply)
	var vs Serde[V2]
	if len(valueSerde) > 0 {
		vs = valueSerde[0]
	}
	return &Table[K, V2]{b: t.b, n: n, ks: t.ks, vs: vs, meta: meta}
}

// tableToStream is ToStream of a table with changes: the new values,
// deletions left out.
func tableToStream[K, V any](t *Table[K, V]) *Stream[K, V] {
	s := &Stream[K, change[V]]{b: t.b, n: t.changes().chg}
	out := stateless(s, "KTABLE-TOSTREAM", false, func(ctx ProcessorContext[K, V], r Record[K, change[V]]) error {
		if r.Value.New != nil {
			ctx.Forward(Record[K, V]{Key: r.Key, Value: *r.Value.New, Timestamp: r.Timestamp, Headers: r.Headers})
		}
		return nil
	})
	out.ks, out.vs = t.ks, t.vs
	return out
}

// ToStreamWithTombstones returns the stream of t's updates with deletions as
// nil values: Kafka Streams' KTable.toStream, whose deletions are null
// values. Write it with TombstoneSerde to produce tombstones.
func ToStreamWithTombstones[K, V any](t *Table[K, V]) *Stream[K, *V] {
	s := &Stream[K, change[V]]{b: t.b, n: t.changes().chg}
	out := stateless(s, "KTABLE-TOSTREAM", false, func(ctx ProcessorContext[K, *V], r Record[K, change[V]]) error {
		ctx.Forward(Record[K, *V]{Key: r.Key, Value: r.Value.New, Timestamp: r.Timestamp, Headers: r.Headers})
		return nil
	})
	out.ks = t.ks
	if t.vs != nil {
		out.vs = TombstoneSerde(t.vs)
	}
	return out
}

// GroupedTable is a table regrouped by a new key (Kafka Streams'
// KGroupedTable), ready for AggregateTable, CountTable or ReduceTable.
type GroupedTable[K, V any] struct {
	b  *Builder
	n  *node // forwards Record[K, change[V]] after the repartition topic
	ks Serde[K]
	vs Serde[V]
}

// GroupTableBy regroups t by a new key and value computed by fn (Kafka
// Streams' KTable.groupBy). It always goes through a repartition topic
// (<application id>-<name>-repartition, name from g or generated), so g
// must give the new key's and value's serdes. Each update of t is sent as
// the removal of the old entry's pair and the addition of the new one's,
// in one record when both have the same new key (as Kafka Streams does
// since KIP-904), so the aggregation calls its subtractor before its adder.
func GroupTableBy[K, V, K2, V2 any](t *Table[K, V], fn func(k K, v V) (K2, V2), g Grouped[K2, V2]) *GroupedTable[K2, V2] {
	if g.KeySerde == nil || g.ValueSerde == nil {
		t.b.fail(fmt.Errorf("%w: GroupTableBy needs the new key's and value's serdes (Grouped)", ErrInvalidTopology))
		return &GroupedTable[K2, V2]{b: t.b, n: t.n}
	}
	up := t.changes()
	up.enableSendingOldValues()
	ks := g.KeySerde
	s := &Stream[K, change[V]]{b: t.b, n: up.chg}
	mapped := stateless(s, "KTABLE-SELECT", true, func(ctx ProcessorContext[K2, change[V2]], r Record[K, change[V]]) error {
		var nk, ok K2
		var nv, ov V2
		var nkb, okb []byte
		if r.Value.New != nil {
			nk, nv = fn(r.Key, *r.Value.New)
			var err error
			if nkb, err = ks.Serialize(nk); err != nil {
				return err
			}
		}
		if r.Value.Old != nil {
			ok, ov = fn(r.Key, *r.Value.Old)
			var err error
			if okb, err = ks.Serialize(ok); err != nil {
				return err
			}
		}
		fwd := func(k K2, c change[V2]) {
			ctx.Forward(Record[K2, change[V2]]{Key: k, Value: c, Timestamp: r.Timestamp, Headers: r.Headers})
		}
		switch {
		case r.Value.New != nil && r.Value.Old != nil && bytes.Equal(nkb, okb):
			fwd(ok, change[V2]{New: &nv, Old: &ov})
		default:
			if r.Value.Old != nil {
				fwd(ok, change[V2]{Old: &ov})
			}
			if r.Value.New != nil {
				fwd(nk, change[V2]{New: &nv})
			}
		}
		return nil
	})
	name := g.Name
	if name == "" {
		name = t.b.newName("KTABLE-AGGREGATE")
	}
	topic := name + "-repartition"
	cs := changeSerde[V2]{g.ValueSerde}
	addSink(mapped, topic, true, ks, Serde[change[V2]](cs))
	rs := source(t.b, topic, true, ks, Serde[change[V2]](cs))
	return &GroupedTable[K2, V2]{b: t.b, n: rs.n, ks: ks, vs: g.ValueSerde}
}

// AggregateTable folds each key's entries into a value (Kafka Streams'
// KGroupedTable.aggregate): adder adds an entry that appears, subtractor
// removes one that disappears or changes (called first). initializer gives
// the starting value of a key that has none. The result's timestamp is the
// largest of the update's and the stored aggregate's, as in Kafka Streams.
// The value serde defaults to JSON.
func AggregateTable[K, V, A any](g *GroupedTable[K, V], initializer func() A, adder, subtractor func(k K, v V, agg A) A, m Materialized[K, A]) *Table[K, A] {
	if m.ValueSerde == nil {
		m.ValueSerde = JSON[A]()
	}
	return tableAggregateNode(g, "KTABLE-AGGREGATE", m,
		func(k K, v V, agg A, has bool) A {
			if !has {
				agg = initializer()
			}
			return adder(k, v, agg)
		}, subtractor)
}

// CountTable counts each key's entries (Kafka Streams' KGroupedTable.count):
// an entry that appears adds one, one that disappears subtracts one; a count
// that drops to zero stays in the table as 0.
func CountTable[K, V any](g *GroupedTable[K, V], m Materialized[K, int64]) *Table[K, int64] {
	if m.ValueSerde == nil {
		m.ValueSerde = Int64()
	}
	return tableAggregateNode(g, "KTABLE-AGGREGATE", m,
		func(_ K, _ V, n int64, _ bool) int64 { return n + 1 },
		func(_ K, _ V, n int64) int64 { return n - 1 })
}

// ReduceTable combines each key's entries (Kafka Streams'
// KGroupedTable.reduce): adder adds a value that appears, subtractor
// removes one that disappears or changes (called first); a key's first
// value is kept as is. The value serde defaults to the grouping's.
func ReduceTable[K, V any](g *GroupedTable[K, V], adder, subtractor func(agg, v V) V, m Materialized[K, V]) *Table[K, V] {
	if m.ValueSerde == nil {
		m.ValueSerde = g.vs
	}
	return tableAggregateNode(g, "KTABLE-REDUCE", m,
		func(_ K, v V, agg V, has bool) V {
			if !has {
				return v
			}
			return adder(agg, v)
		},
		func(_ K, v V, agg V) V { return subtractor(agg, v) })
}

func tableAggregateNode[K, V, A any](g *GroupedTable[K, V], prefix string, m Materialized[K, A], add func(k K, v V, agg A, has bool) A, sub func(k K, v V, agg A) A) *Table[K, A] {
	name, ok := materialize(g.b, prefix, &m, g.ks)
	if !ok {
		return &Table[K, A]{b: g.b, n: g.n, meta: &tableMeta{b: g.b, chg: g.n}}
	}
	g.b.AddStore(tableStoreBuilder(m.StoreName, m.KeySerde, m.ValueSerde, m.Options...))
	store := m.StoreName
	meta := &tableMeta{b: g.b, getter: storeGetter[K, A](store)}
	out := addProcessor(g.b, name, func() Processor[K, change[V], K, change[A]] {
		return &tableAggregateProc[K, V, A]{store: store, meta: meta, add: add, sub: sub}
	}, []string{store}, false, g.n)
	meta.chg = out.n
	return &Table[K, A]{b: g.b, n: out.n, ks: m.KeySerde, vs: m.ValueSerde, store: store, meta: meta}
}

type tableAggregateProc[K, V, A any] struct {
	store string
	meta  *tableMeta
	s     *tableStore[K, A]
	add   func(k K, v V, agg A, has bool) A
	sub   func(k K, v V, agg A) A
}

func (p *tableAggregateProc[K, V, A]) Init(ctx ProcessorContext[K, change[A]]) (err error) {
	p.s, err = getTableStore[K, A](ctx, p.store)
	return err
}

// Process follows Kafka Streams' KTableAggregate: subtract the old value
// from the stored aggregate, then add the new one; the timestamp is the
// update's, or the stored aggregate's when that is larger and the
// aggregate was used.
func (p *tableAggregateProc[K, V, A]) Process(ctx ProcessorContext[K, change[A]], r Record[K, change[V]]) error {
	k, c := r.Key, r.Value
	ts := r.Timestamp.UnixMilli()
	old, found, err := p.s.getTimed(k)
	if err != nil {
		return err
	}
	if !found && c.New == nil {
		// Nothing to subtract from and nothing to add: Kafka Streams
		// stores and forwards a null aggregate.
		if err := p.s.delete(k); err != nil {
			return err
		}
		ctx.Forward(Record[K, change[A]]{Key: k, Timestamp: r.Timestamp, Headers: r.Headers})
		return nil
	}
	newTS := ts
	stored, applied, err := p.s.inner.Update(k, func(cur timedValue[A], has bool) (timedValue[A], error) {
		agg := cur.value
		if c.Old != nil && has {
			agg = p.sub(k, *c.Old, agg)
			newTS = max(ts, cur.ts)
		}
		if c.New != nil {
			agg = p.add(k, *c.New, agg, has)
			if has {
				newTS = max(ts, cur.ts)
			}
		}
		return timedValue[A]{ts: newTS, value: agg}, nil
	})
	if err != nil {
		return err
	}
	if !applied {
		// A redelivered update already applied: forward the stored value.
		newTS = stored.ts
	}
	out := change[A]{New: &stored.value}
	if p.meta.sendOld && found {
		out.Old = &old.value
	}
	rts := r.Timestamp
	if newTS != ts {
		rts = time.UnixMilli(newTS)
	}
	ctx.Forward(Record[K, change[A]]{Key: k, Value: out, Timestamp: rts, Headers: r.Headers})
	return nil
}

func (p *tableAggregateProc[K, V, A]) Close() error { return nil }
