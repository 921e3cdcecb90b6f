package stream

import (
	"fmt"
	"time"
)

// Stream is a record stream (Kafka Streams' KStream): every record is an event.
// Operations that keep the key and value types are methods; those that change a
// type are package functions (Go methods cannot have type parameters).
type Stream[K, V any] struct {
	b  *Builder
	n  *node
	ks Serde[K]
	vs Serde[V]
}

// Node is the name of the processor node that produces this stream.
func (s *Stream[K, V]) Node() string { return s.n.name }

// SourceOpt configures a source; WithTimestampExtractor and WithSourceName
// make them.
type SourceOpt[K, V any] interface{ applySource(*sourceCfg[K, V]) }

type sourceOptFunc[K, V any] func(*sourceCfg[K, V])

func (f sourceOptFunc[K, V]) applySource(c *sourceCfg[K, V]) { f(c) }

type sourceCfg[K, V any] struct {
	ts   func(Record[K, V]) time.Time
	name string
}

// WithTimestampExtractor sets the event time of records from a source. The
// default is the Kafka record timestamp.
func WithTimestampExtractor[K, V any](fn func(rec Record[K, V]) time.Time) SourceOpt[K, V] {
	return sourceOptFunc[K, V](func(c *sourceCfg[K, V]) { c.ts = fn })
}

// WithSourceName names the source node (default KSTREAM-SOURCE-<n>).
func WithSourceName[K, V any](name string) SourceOpt[K, V] {
	return sourceOptFunc[K, V](func(c *sourceCfg[K, V]) { c.name = name })
}

// Source adds a stream read from topic. Records whose key or value cannot be
// decoded go to the application's deserialization error handler.
func Source[K, V any](b *Builder, topic string, keySerde Serde[K], valueSerde Serde[V], opts ...SourceOpt[K, V]) *Stream[K, V] {
	return source(b, topic, false, keySerde, valueSerde, opts...)
}

func source[K, V any](b *Builder, topic string, internal bool, ks Serde[K], vs Serde[V], opts ...SourceOpt[K, V]) *Stream[K, V] {
	var cfg sourceCfg[K, V]
	for _, o := range opts {
		o.applySource(&cfg)
	}
	if cfg.name == "" {
		cfg.name = b.newName("KSTREAM-SOURCE")
	}
	if topic == "" {
		b.fail(fmt.Errorf("%w: source %s needs a topic name", ErrInvalidTopology, cfg.name))
	}
	if _, dup := b.sources[topic]; dup {
		b.fail(fmt.Errorf("%w: topic %q is read by two sources", ErrInvalidTopology, topic))
	}
	if ks == nil || vs == nil {
		b.fail(fmt.Errorf("%w: source %q needs a key and a value serde", ErrInvalidTopology, topic))
	}
	n := &node{name: cfg.name, kind: kindSource, topic: topic, internal: internal}
	b.sources[topic] = n
	n.build = func(t *task, kids []any, _ []string) (any, func() error, error) {
		out, err := typedKids[K, V](n, kids)
		if err != nil {
			return nil, nil, err
		}
		return func(r *inRecord) {
			defer recoverRecord(t, n.name)
			var rec Record[K, V]
			var err error
			if r.key != nil {
				rec.Key, err = ks.Deserialize(r.key)
			}
			if err == nil {
				rec.Value, err = vs.Deserialize(r.value)
			}
			if err != nil {
				if herr := t.env.badRecord(t, r, err); herr != nil {
					t.fail(herr)
				}
				return
			}
			rec.Timestamp, rec.Headers = r.timestamp, r.headers
			if cfg.ts != nil {
				rec.Timestamp = cfg.ts(rec)
			}
			t.advanceStreamTime(rec.Timestamp)
			for _, o := range out {
				o(rec)
			}
		}, nil, nil
	}
	b.add(n)
	return &Stream[K, V]{b: b, n: n, ks: ks, vs: vs}
}

// Process attaches a user Processor to s. stores names the state stores (added
// with Builder.AddStore) the processor may open. supplier is called once per
// task.
func Process[KIn, VIn, KOut, VOut any](s *Stream[KIn, VIn], name string, supplier func() Processor[KIn, VIn, KOut, VOut], stores ...string) *Stream[KOut, VOut] {
	if name == "" {
		name = s.b.newName("KSTREAM-PROCESSOR")
	}
	if supplier == nil {
		s.b.fail(fmt.Errorf("%w: processor %s has a nil supplier", ErrInvalidTopology, name))
	}
	out := addProcessor(s.b, name, supplier, stores, true, s.n)
	return out
}

func addProcessor[KIn, VIn, KOut, VOut any](b *Builder, name string, supplier func() Processor[KIn, VIn, KOut, VOut], stores []string, keyChanged bool, parents ...*node) *Stream[KOut, VOut] {
	n := &node{name: name, kind: kindProcessor, stores: stores}
	for _, p := range parents {
		n.keyChanged = n.keyChanged || p.keyChanged
	}
	n.keyChanged = n.keyChanged || keyChanged
	n.build = func(t *task, kids []any, names []string) (any, func() error, error) {
		out, err := typedKids[KOut, VOut](n, kids)
		if err != nil {
			return nil, nil, err
		}
		allowed := map[string]bool{}
		for _, s := range stores {
			allowed[s] = true
		}
		ctx := &userContext[KOut, VOut]{procContext: &procContext[KOut, VOut]{t: t, node: n, kids: out, names: names, stores: allowed, logger: t.logger.With("node", n.name)}}
		p := supplier()
		if p == nil {
			return nil, nil, fmt.Errorf("%w: the supplier of processor %s returned nil", ErrInvalidTopology, n.name)
		}
		if err := initProcessor(n.name, p, ctx); err != nil {
			return nil, nil, err
		}
		return func(rec Record[KIn, VIn]) {
			defer recoverRecord(t, n.name)
			if err := p.Process(ctx, rec); err != nil {
				md := t.cur.meta
				t.fail(&ProcessError{Node: n.name, Topic: md.Topic, Partition: md.Partition, Offset: md.Offset, Err: err})
			}
		}, safeClose(n.name, p.Close), nil
	}
	b.add(n, parents...)
	return &Stream[KOut, VOut]{b: b, n: n}
}

// stateless adds a DSL node that is a ProcessorFunc.
func stateless[KIn, VIn, KOut, VOut any](s *Stream[KIn, VIn], prefix string, keyChanged bool, f ProcessorFunc[KIn, VIn, KOut, VOut]) *Stream[KOut, VOut] {
	return addProcessor(s.b, s.b.newName(prefix), func() Processor[KIn, VIn, KOut, VOut] { return f }, nil, keyChanged, s.n)
}

// Filter keeps the records for which pred is true.
func (s *Stream[K, V]) Filter(pred func(k K, v V) bool) *Stream[K, V] {
	out := stateless(s, "KSTREAM-FILTER", false, func(ctx ProcessorContext[K, V], r Record[K, V]) error {
		if pred(r.Key, r.Value) {
			ctx.Forward(r)
		}
		return nil
	})
	out.ks, out.vs = s.ks, s.vs
	return out
}

// FilterNot keeps the records for which pred is false.
func (s *Stream[K, V]) FilterNot(pred func(k K, v V) bool) *Stream[K, V] {
	return s.Filter(func(k K, v V) bool { return !pred(k, v) })
}

// Peek calls fn for every record and forwards it unchanged.
func (s *Stream[K, V]) Peek(fn func(k K, v V)) *Stream[K, V] {
	out := stateless(s, "KSTREAM-PEEK", false, func(ctx ProcessorContext[K, V], r Record[K, V]) error {
		fn(r.Key, r.Value)
		ctx.Forward(r)
		return nil
	})
	out.ks, out.vs = s.ks, s.vs
	return out
}

// SetTimestamp gives each record the timestamp fn computes from its key,
// value and current timestamp: the time later windowed aggregations put it
// in and the timestamp a sink writes. It does not move the task's stream
// time, which follows the timestamps read at the source; to set event time
// for everything downstream, including stream time, use
// [WithTimestampExtractor] on the source.
func (s *Stream[K, V]) SetTimestamp(fn func(k K, v V, ts time.Time) time.Time) *Stream[K, V] {
	out := stateless(s, "KSTREAM-SETTIMESTAMP", false, func(ctx ProcessorContext[K, V], r Record[K, V]) error {
		r.Timestamp = fn(r.Key, r.Value, r.Timestamp)
		ctx.Forward(r)
		return nil
	})
	out.ks, out.vs = s.ks, s.vs
	return out
}

// Branch splits s (Kafka Streams' split/branch): each record goes to the stream
// of the first predicate it matches, or nowhere. Add a last predicate that
// always returns true for a default branch.
func (s *Stream[K, V]) Branch(preds ...func(k K, v V) bool) []*Stream[K, V] {
	name := s.b.newName("KSTREAM-BRANCH")
	childNames := make([]string, len(preds))
	for i := range preds {
		childNames[i] = fmt.Sprintf("%s-%d", name, i)
	}
	br := addProcessor(s.b, name, func() Processor[K, V, K, V] {
		return ProcessorFunc[K, V, K, V](func(ctx ProcessorContext[K, V], r Record[K, V]) error {
			for i, p := range preds {
				if p(r.Key, r.Value) {
					ctx.ForwardTo(childNames[i], r)
					return nil
				}
			}
			return nil
		})
	}, nil, false, s.n)
	out := make([]*Stream[K, V], len(preds))
	for i := range preds {
		c := addProcessor(s.b, childNames[i], func() Processor[K, V, K, V] { return passThrough[K, V]() }, nil, false, br.n)
		c.ks, c.vs = s.ks, s.vs
		out[i] = c
	}
	return out
}

func passThrough[K, V any]() ProcessorFunc[K, V, K, V] {
	return func(ctx ProcessorContext[K, V], r Record[K, V]) error {
		ctx.Forward(r)
		return nil
	}
}

// Merge returns one stream with the records of s and others.
func (s *Stream[K, V]) Merge(others ...*Stream[K, V]) *Stream[K, V] {
	parents := []*node{s.n}
	for _, o := range others {
		parents = append(parents, o.n)
	}
	out := addProcessor(s.b, s.b.newName("KSTREAM-MERGE"), func() Processor[K, V, K, V] { return passThrough[K, V]() }, nil, false, parents...)
	out.ks, out.vs = s.ks, s.vs
	return out
}

// To writes the stream to topic, partitioned by the murmur2 hash of the
// serialized key (the partitioner of Kafka's Java clients).
func (s *Stream[K, V]) To(topic string, keySerde Serde[K], valueSerde Serde[V]) {
	addSink(s, topic, false, keySerde, valueSerde)
}

func addSink[K, V any](s *Stream[K, V], topic string, internal bool, ks Serde[K], vs Serde[V]) {
	addSinkTo(s, topic, internal, ks, vs, nil)
}

// addSinkTo is addSink with partition choosing each record's partition
// (nil: by the serialized key).
func addSinkTo[K, V any](s *Stream[K, V], topic string, internal bool, ks Serde[K], vs Serde[V], partition func(r Record[K, V]) int32) {
	if topic == "" {
		s.b.fail(fmt.Errorf("%w: a sink after %s needs a topic name", ErrInvalidTopology, s.n.name))
		return
	}
	if ks == nil || vs == nil {
		s.b.fail(fmt.Errorf("%w: sink %q needs a key and a value serde", ErrInvalidTopology, topic))
		return
	}
	n := &node{name: s.b.newName("KSTREAM-SINK"), kind: kindSink, topic: topic, internal: internal}
	n.build = func(t *task, _ []any, _ []string) (any, func() error, error) {
		resolved := resolveTopic(t.env.applicationID(), n)
		return func(r Record[K, V]) {
			defer recoverRecord(t, n.name)
			kb, err := ks.Serialize(r.Key)
			if err != nil {
				t.fail(&ProcessError{Node: n.name, Topic: t.cur.meta.Topic, Partition: t.cur.meta.Partition, Offset: t.cur.meta.Offset, Err: err})
				return
			}
			vb, err := vs.Serialize(r.Value)
			if err != nil {
				t.fail(&ProcessError{Node: n.name, Topic: t.cur.meta.Topic, Partition: t.cur.meta.Partition, Offset: t.cur.meta.Offset, Err: err})
				return
			}
			hs := r.Headers
			if internal {
				hs = append(append([]Header(nil), hs...), t.originHeaders()...)
			}
			p := int32(-1)
			if partition != nil {
				p = partition(r)
			}
			if err := t.env.send(t, &outRecord{topic: resolved, partition: p, key: kb, value: vb, timestamp: r.Timestamp, headers: hs}); err != nil {
				t.fail(err)
			}
		}, nil, nil
	}
	s.b.add(n, s.n)
}

// MapValues transforms each value; the key, and so the partitioning, stay.
func MapValues[K, V, V2 any](s *Stream[K, V], fn func(k K, v V) V2) *Stream[K, V2] {
	out := stateless(s, "KSTREAM-MAPVALUES", false, func(ctx ProcessorContext[K, V2], r Record[K, V]) error {
		ctx.Forward(Record[K, V2]{Key: r.Key, Value: fn(r.Key, r.Value), Timestamp: r.Timestamp, Headers: r.Headers})
		return nil
	})
	out.ks = s.ks
	return out
}

// Map transforms each record into a new key and value. A later grouping
// repartitions the stream.
func Map[K, V, K2, V2 any](s *Stream[K, V], fn func(k K, v V) (K2, V2)) *Stream[K2, V2] {
	return stateless(s, "KSTREAM-MAP", true, func(ctx ProcessorContext[K2, V2], r Record[K, V]) error {
		k, v := fn(r.Key, r.Value)
		ctx.Forward(Record[K2, V2]{Key: k, Value: v, Timestamp: r.Timestamp, Headers: r.Headers})
		return nil
	})
}

// FlatMap turns each record into zero or more records.
func FlatMap[K, V, K2, V2 any](s *Stream[K, V], fn func(k K, v V) []KeyValue[K2, V2]) *Stream[K2, V2] {
	return stateless(s, "KSTREAM-FLATMAP", true, func(ctx ProcessorContext[K2, V2], r Record[K, V]) error {
		for _, kv := range fn(r.Key, r.Value) {
			ctx.Forward(Record[K2, V2]{Key: kv.Key, Value: kv.Value, Timestamp: r.Timestamp, Headers: r.Headers})
		}
		return nil
	})
}

// FlatMapValues turns each value into zero or more values with the same key.
func FlatMapValues[K, V, V2 any](s *Stream[K, V], fn func(k K, v V) []V2) *Stream[K, V2] {
	out := stateless(s, "KSTREAM-FLATMAPVALUES", false, func(ctx ProcessorContext[K, V2], r Record[K, V]) error {
		for _, v := range fn(r.Key, r.Value) {
			ctx.Forward(Record[K, V2]{Key: r.Key, Value: v, Timestamp: r.Timestamp, Headers: r.Headers})
		}
		return nil
	})
	out.ks = s.ks
	return out
}

// SelectKey gives each record a new key computed from it.
func SelectKey[K, V, K2 any](s *Stream[K, V], fn func(k K, v V) K2) *Stream[K2, V] {
	out := stateless(s, "KSTREAM-KEY-SELECT", true, func(ctx ProcessorContext[K2, V], r Record[K, V]) error {
		ctx.Forward(Record[K2, V]{Key: fn(r.Key, r.Value), Value: r.Value, Timestamp: r.Timestamp, Headers: r.Headers})
		return nil
	})
	out.vs = s.vs
	return out
}

// Grouped sets the serdes (and the name of the repartition topic) of a grouping.
// Zero fields take the stream's serdes and a generated name.
type Grouped[K, V any] struct {
	// Name names the repartition topic, <application id>-<Name>-repartition
	// (default: a generated node name).
	Name string
	// KeySerde writes and reads the keys in the repartition topic.
	KeySerde Serde[K]
	// ValueSerde writes and reads the values in the repartition topic.
	ValueSerde Serde[V]
}

// GroupedStream is a stream grouped by key, ready for an aggregation.
type GroupedStream[K, V any] struct {
	b  *Builder
	n  *node
	ks Serde[K]
	vs Serde[V]
}

// Stream returns the grouped records as a stream partitioned by key (after the
// repartition topic, if one was needed), for aggregations written as
// Processors, such as those of package window.
func (g *GroupedStream[K, V]) Stream() *Stream[K, V] {
	return &Stream[K, V]{b: g.b, n: g.n, ks: g.ks, vs: g.vs}
}

// KeySerde is the grouping's key serde.
func (g *GroupedStream[K, V]) KeySerde() Serde[K] { return g.ks }

// ValueSerde is the grouping's value serde.
func (g *GroupedStream[K, V]) ValueSerde() Serde[V] { return g.vs }

// Builder returns the builder the stream belongs to, to add stores.
func (s *Stream[K, V]) Builder() *Builder { return s.b }

// GroupByKey groups s by its current key. When an earlier operation may have
// changed the key, the records go through a repartition topic
// (<application id>-<name>-repartition) so each key lands in one task.
func GroupByKey[K, V any](s *Stream[K, V], g ...Grouped[K, V]) *GroupedStream[K, V] {
	var cfg Grouped[K, V]
	if len(g) > 0 {
		cfg = g[0]
	}
	if cfg.KeySerde == nil {
		cfg.KeySerde = s.ks
	}
	if cfg.ValueSerde == nil {
		cfg.ValueSerde = s.vs
	}
	if !s.n.keyChanged {
		return &GroupedStream[K, V]{b: s.b, n: s.n, ks: cfg.KeySerde, vs: cfg.ValueSerde}
	}
	if cfg.KeySerde == nil || cfg.ValueSerde == nil {
		s.b.fail(fmt.Errorf("%w: grouping after a key change at %s needs serdes (Grouped) for the repartition topic", ErrInvalidTopology, s.n.name))
		return &GroupedStream[K, V]{b: s.b, n: s.n}
	}
	name := cfg.Name
	if name == "" {
		name = s.b.newName("KSTREAM-AGGREGATE")
	}
	topic := name + "-repartition"
	addSink(s, topic, true, cfg.KeySerde, cfg.ValueSerde)
	rs := source(s.b, topic, true, cfg.KeySerde, cfg.ValueSerde)
	return &GroupedStream[K, V]{b: s.b, n: rs.n, ks: cfg.KeySerde, vs: cfg.ValueSerde}
}

// GroupBy groups s by a new key; it always repartitions.
func GroupBy[K, V, K2 any](s *Stream[K, V], fn func(k K, v V) K2, g Grouped[K2, V]) *GroupedStream[K2, V] {
	return GroupByKey(SelectKey(s, fn), g)
}

// Materialized names and types the store of an aggregation. Zero fields take
// defaults: a generated store name, the grouping's key serde, and a value serde
// that depends on the aggregation (Int64 for Count, the grouping's value serde
// for Reduce, JSON for Aggregate).
type Materialized[K, V any] struct {
	// StoreName names the store, for interactive queries and its changelog
	// topic <application id>-<StoreName>-changelog.
	StoreName string
	// KeySerde stores the keys.
	KeySerde Serde[K]
	// ValueSerde stores the aggregated values.
	ValueSerde Serde[V]
	// Options such as Persistent().
	Options []StoreOpt
}

// Table is a changelog stream materialized in a key-value store (Kafka
// Streams' KTable): the latest value per key.
type Table[K, V any] struct {
	b     *Builder
	n     *node
	ks    Serde[K]
	vs    Serde[V]
	store string
	// meta is set for tables whose node forwards changes (table.go); conv
	// converts the updates of a stream aggregation's table to changes.
	meta, conv *tableMeta
}

// StoreName is the name of the store that holds the table, for interactive
// queries.
func (t *Table[K, V]) StoreName() string { return t.store }

// ToStream returns the stream of the table's updates. Deletions (of a
// table read with TableSource, or filtered out) are left out: use
// ToStreamWithTombstones to see them.
func (t *Table[K, V]) ToStream() *Stream[K, V] {
	if t.meta != nil {
		return tableToStream(t)
	}
	s := &Stream[K, V]{b: t.b, n: t.n, ks: t.ks, vs: t.vs}
	out := stateless(s, "KTABLE-TOSTREAM", false, passThrough[K, V]())
	out.ks, out.vs = t.ks, t.vs
	return out
}

// Aggregate folds each key's records into a value: initializer gives the
// starting value and aggregator adds one record. Every update is forwarded.
// A redelivered input record is not applied twice.
func Aggregate[K, V, A any](g *GroupedStream[K, V], initializer func() A, aggregator func(k K, v V, agg A) A, m Materialized[K, A]) *Table[K, A] {
	if m.ValueSerde == nil {
		m.ValueSerde = JSON[A]()
	}
	return aggregateNode(g, "KSTREAM-AGGREGATE", m, func(k K, v V, old A, found bool) A {
		if !found {
			old = initializer()
		}
		return aggregator(k, v, old)
	})
}

// Count counts each key's records.
func Count[K, V any](g *GroupedStream[K, V], m Materialized[K, int64]) *Table[K, int64] {
	if m.ValueSerde == nil {
		m.ValueSerde = Int64()
	}
	return aggregateNode(g, "KSTREAM-COUNT", m, func(_ K, _ V, old int64, _ bool) int64 { return old + 1 })
}

// Reduce combines each key's values with reducer; the first value is kept as is.
func Reduce[K, V any](g *GroupedStream[K, V], reducer func(agg, v V) V, m Materialized[K, V]) *Table[K, V] {
	if m.ValueSerde == nil {
		m.ValueSerde = g.vs
	}
	return aggregateNode(g, "KSTREAM-REDUCE", m, func(_ K, v V, old V, found bool) V {
		if !found {
			return v
		}
		return reducer(old, v)
	})
}

// materialize names a stateful node (prefix and a number) and fills in
// m's defaults: a store named after the node, the key serde ks. ok is
// false, and the topology fails, when a serde is still missing.
func materialize[K, A any](b *Builder, prefix string, m *Materialized[K, A], ks Serde[K]) (name string, ok bool) {
	name = b.newName(prefix)
	if m.StoreName == "" {
		m.StoreName = name + "-STATE-STORE"
	}
	if m.KeySerde == nil {
		m.KeySerde = ks
	}
	if m.KeySerde == nil || m.ValueSerde == nil {
		b.fail(fmt.Errorf("%w: %s needs key and value serdes (Materialized)", ErrInvalidTopology, name))
		return name, false
	}
	return name, true
}

func aggregateNode[K, V, A any](g *GroupedStream[K, V], prefix string, m Materialized[K, A], fold func(k K, v V, old A, found bool) A) *Table[K, A] {
	name, _ := materialize(g.b, prefix, &m, g.ks)
	g.b.AddStore(KeyValueStoreBuilder(m.StoreName, m.KeySerde, m.ValueSerde, m.Options...))
	store := m.StoreName
	out := addProcessor(g.b, name, func() Processor[K, V, K, A] {
		return &aggregateProcessor[K, V, A]{store: store, fold: fold}
	}, []string{store}, false, g.n)
	return &Table[K, A]{b: g.b, n: out.n, ks: m.KeySerde, vs: m.ValueSerde, store: store}
}

type aggregateProcessor[K, V, A any] struct {
	store string
	kvs   KeyValueStore[K, A]
	fold  func(k K, v V, old A, found bool) A
}

func (p *aggregateProcessor[K, V, A]) Init(ctx ProcessorContext[K, A]) error {
	s, err := GetKeyValueStore[K, A](ctx, p.store)
	p.kvs = s
	return err
}

func (p *aggregateProcessor[K, V, A]) Process(ctx ProcessorContext[K, A], r Record[K, V]) error {
	// On a redelivered record the stored value already includes it; forward it
	// again so downstream sees the table's current value (identical or newer).
	agg, _, err := p.kvs.Update(r.Key, func(old A, found bool) (A, error) {
		return p.fold(r.Key, r.Value, old, found), nil
	})
	if err != nil {
		return err
	}
	ctx.Forward(Record[K, A]{Key: r.Key, Value: agg, Timestamp: r.Timestamp, Headers: r.Headers})
	return nil
}

func (p *aggregateProcessor[K, V, A]) Close() error { return nil }
