package stream

// The foreign-key table–table join (Kafka Streams' KIP-213). Each left
// entry subscribes to the foreign key its value names: the subscription
// goes through the subscription topic, keyed by the foreign key so it lands
// in the partition of the right table that holds that key, and is kept
// there in the subscription store, keyed by foreign key then left key. The
// right side answers through the response topic, straight to the left
// key's partition: once per subscription, with the right value of the
// moment, and again for every subscriber whenever the right value changes.
// The left side joins an answer with its current value, unless that value
// changed since the subscription (its hash differs): the answer is stale
// and a newer one is on its way. The names follow Kafka Streams'
// SubscriptionSendProcessorSupplier, SubscriptionReceiveProcessorSupplier,
// SubscriptionJoinProcessorSupplier, ForeignTableJoinProcessorSupplier and
// ResponseJoinProcessorSupplier.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"time"
)

// ForeignKeyJoined names the internal topics and store of a foreign-key
// join and materializes its result (Kafka Streams' TableJoined with
// Materialized). Zero fields take defaults.
type ForeignKeyJoined[K, VR any] struct {
	// Name names the subscription topic
	// <application id>-<Name>-subscription-registration-topic, the
	// response topic <application id>-<Name>-subscription-response-topic
	// and the subscription store <Name>-subscription-store (default: a
	// generated node name, KTABLE-FK-JOIN-<n>).
	Name string
	// Materialized names and types the store holding the join's result
	// (default: <Name>-STATE-STORE, the left table's key serde and JSON
	// values).
	Materialized Materialized[K, VR]
}

// JoinTablesOnForeignKey joins each entry of t with the entry of other
// whose key foreignKey extracts from it (Kafka Streams'
// KTable.join(KTable, BiFunction foreignKeyExtractor, ValueJoiner), KIP-213):
// the result, keyed as t, has joiner(value, other value) for the entries
// of t whose foreign key has a value in other. Many entries of t may refer
// to one entry of other; the tables need not be co-partitioned, but the
// topic of other must be partitioned by the murmur2 hash of the serialized
// key, as Kafka's Java clients and this package's sinks write (not
// sarama's default partitioner). foreignKey returning ok false means the
// entry refers to nothing (Kafka Streams' null foreign key): it has no
// result.
//
// It follows Kafka Streams' semantics record for record (checked against
// Kafka Streams 4.4 by TestTablesMatchKafkaStreams). An update of t is
// sent to the partition of other that holds its foreign key (the
// subscription topic <application id>-<name>-subscription-registration-topic)
// and answered through the response topic
// <application id>-<name>-subscription-response-topic; an update of other
// is answered to every entry of t that refers to it. The result's
// timestamp is the larger of the update's and the other value's for an
// update of t, the update's for an update of other. An answer that comes
// back after the entry of t changed again is dropped. A deletion in the
// result is forwarded as a nil value (ToStreamWithTombstones), also when no
// result existed: when the entry of t is deleted, when its new foreign key
// has no value in other (after a change of foreign key or to no foreign
// key), and when the value of other it refers to is deleted.
//
// Both tables must be readable by key with their values' serdes known
// (the value of t is hashed to recognise stale answers, the values of
// other travel through the response topic): a table made by
// MapTableValues needs its valueSerde argument. The right table must keep
// timestamps (a table read with TableSource or made by AggregateTable,
// CountTable or ReduceTable keeps them; a stream aggregation's does
// not). The result is materialized in a store (j's Materialized, by
// default <name>-STATE-STORE with JSON values) that QueryStore reads.
func JoinTablesOnForeignKey[K, V, KO, VO, VR any](t *Table[K, V], other *Table[KO, VO], foreignKey func(k K, v V) (fk KO, ok bool), joiner func(v V, vo VO) VR, j ...ForeignKeyJoined[K, VR]) *Table[K, VR] {
	var inner func(v V, vo *VO) VR
	if joiner != nil {
		inner = func(v V, vo *VO) VR { return joiner(v, *vo) }
	}
	return foreignKeyJoin(t, other, foreignKey, false, inner, j)
}

// LeftJoinTablesOnForeignKey is JoinTablesOnForeignKey keeping every entry
// of t (Kafka Streams' KTable.leftJoin(KTable, BiFunction
// foreignKeyExtractor, ValueJoiner)): joiner gets nil for the other value
// when the foreign key has no value in other or when foreignKey returns ok
// false. The result has a value for every key of t; it is deleted only when
// the key is deleted from t.
func LeftJoinTablesOnForeignKey[K, V, KO, VO, VR any](t *Table[K, V], other *Table[KO, VO], foreignKey func(k K, v V) (fk KO, ok bool), joiner func(v V, vo *VO) VR, j ...ForeignKeyJoined[K, VR]) *Table[K, VR] {
	return foreignKeyJoin(t, other, foreignKey, true, joiner, j)
}

// fkInstruction tells the right side what to do with a subscription
// (Kafka Streams' SubscriptionWrapper.Instruction).
type fkInstruction byte

const (
	// fkDeleteNoPropagate removes the subscription, no answer: the left
	// entry moved to another foreign key, whose answer will do.
	fkDeleteNoPropagate fkInstruction = iota
	// fkDeleteAndPropagate removes the subscription and answers with no
	// value: the left entry was deleted or refers to nothing (inner join).
	fkDeleteAndPropagate
	// fkPropagateNullIfNoFK subscribes and answers, with no value if the
	// foreign key has none: the left entry's previous result must go.
	fkPropagateNullIfNoFK
	// fkPropagateOnlyIfFK subscribes and answers only if the foreign key
	// has a value (an inner join's new entry or unchanged foreign key).
	fkPropagateOnlyIfFK
)

// fkSubscription is one left entry's subscription to a foreign key, the
// value of the subscription topic and of the subscription store.
type fkSubscription struct {
	instr fkInstruction
	// hash is the hash of the left value it was made for; nil when the
	// left entry was deleted.
	hash []byte
	// hasFK is false for a left join's entry without a foreign key (then
	// the record's key is nil and nothing is stored).
	hasFK bool
	// partition is the left entry's partition, where the answer goes.
	partition int32
	// pk is the serialized left key.
	pk []byte
}

const fkWireVersion = 1

// fkSubscriptionSerde writes a subscription as: version, instruction,
// flags (1: hash, 2: foreign key), partition (4 bytes), the 16-byte hash
// if any, then the left key.
type fkSubscriptionSerde struct{}

func (fkSubscriptionSerde) Serialize(s fkSubscription) ([]byte, error) {
	b := make([]byte, 7, 7+len(s.hash)+len(s.pk))
	b[0], b[1] = fkWireVersion, byte(s.instr)
	if s.hash != nil {
		b[2] |= 1
	}
	if s.hasFK {
		b[2] |= 2
	}
	binary.BigEndian.PutUint32(b[3:], uint32(s.partition))
	return append(append(b, s.hash...), s.pk...), nil
}

func (fkSubscriptionSerde) Deserialize(b []byte) (fkSubscription, error) {
	var s fkSubscription
	if len(b) < 7 || b[0] != fkWireVersion || b[1] > byte(fkPropagateOnlyIfFK) || b[2]&^3 != 0 {
		return s, &SerdeError{Format: "foreign-key join subscription", Err: fmt.Errorf("bad header in %d bytes", len(b))}
	}
	s.instr, s.hasFK = fkInstruction(b[1]), b[2]&2 != 0
	s.partition = int32(binary.BigEndian.Uint32(b[3:]))
	rest := b[7:]
	if b[2]&1 != 0 {
		if len(rest) < fkHashLen {
			return s, &SerdeError{Format: "foreign-key join subscription", Err: fmt.Errorf("hash cut short in %d bytes", len(b))}
		}
		s.hash, rest = bytes.Clone(rest[:fkHashLen]), rest[fkHashLen:]
	}
	s.pk = bytes.Clone(rest)
	return s, nil
}

// fkResponse is the right side's answer to a subscription (Kafka Streams'
// SubscriptionResponseWrapper), keyed by the serialized left key.
type fkResponse struct {
	// hash is the subscription's.
	hash []byte
	// value is the serialized right value; nil: none.
	value []byte
	// partition is where the answer goes (not serialized).
	partition int32
}

// fkResponseSerde writes an answer as: version, flags (1: hash, 2:
// value), the 16-byte hash if any, then the right value.
type fkResponseSerde struct{}

func (fkResponseSerde) Serialize(r fkResponse) ([]byte, error) {
	b := make([]byte, 2, 2+len(r.hash)+len(r.value))
	b[0] = fkWireVersion
	if r.hash != nil {
		b[1] |= 1
	}
	if r.value != nil {
		b[1] |= 2
	}
	return append(append(b, r.hash...), r.value...), nil
}

func (fkResponseSerde) Deserialize(b []byte) (fkResponse, error) {
	var r fkResponse
	if len(b) < 2 || b[0] != fkWireVersion || b[1]&^3 != 0 {
		return r, &SerdeError{Format: "foreign-key join response", Err: fmt.Errorf("bad header in %d bytes", len(b))}
	}
	rest := b[2:]
	if b[1]&1 != 0 {
		if len(rest) < fkHashLen {
			return r, &SerdeError{Format: "foreign-key join response", Err: fmt.Errorf("hash cut short in %d bytes", len(b))}
		}
		r.hash, rest = bytes.Clone(rest[:fkHashLen]), rest[fkHashLen:]
	}
	if b[1]&2 != 0 {
		r.value = bytes.Clone(rest)
	}
	return r, nil
}

const fkHashLen = 16

// fkHash is the 128-bit hash of a serialized left value (Kafka Streams
// uses Murmur3's; any will do, the hash never leaves this join).
func fkHash(b []byte) []byte {
	h := fnv.New128a()
	_, _ = h.Write(b)
	return h.Sum(nil)
}

// fkPrefix is the subscription store's key prefix of a foreign key: its
// length (4 bytes), then the key, so "a" is not a prefix of "ab" (Kafka
// Streams' CombinedKeySchema).
func fkPrefix(fk []byte) []byte {
	b := make([]byte, 4, 4+len(fk))
	binary.BigEndian.PutUint32(b, uint32(len(fk)))
	return append(b, fk...)
}

// fkPrefixEnd is the smallest key after every key starting with prefix
// (nil: none).
func fkPrefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func foreignKeyJoin[K, V, KO, VO, VR any](t *Table[K, V], other *Table[KO, VO], foreignKey func(k K, v V) (KO, bool), left bool, joiner func(v V, vo *VO) VR, j []ForeignKeyJoined[K, VR]) *Table[K, VR] {
	b := t.b
	var cfg ForeignKeyJoined[K, VR]
	if len(j) > 0 {
		cfg = j[0]
	}
	name := b.newName("KTABLE-FK-JOIN")
	if cfg.Name != "" {
		name = cfg.Name
	}
	m := cfg.Materialized
	if m.StoreName == "" {
		m.StoreName = name + "-STATE-STORE"
	}
	if m.KeySerde == nil {
		m.KeySerde = t.ks
	}
	if m.ValueSerde == nil {
		m.ValueSerde = JSON[VR]()
	}
	fail := func(format string, args ...any) *Table[K, VR] {
		b.fail(fmt.Errorf("%w: foreign-key join %s: "+format, append([]any{ErrInvalidTopology, name}, args...)...))
		return &Table[K, VR]{b: b, n: t.n, meta: &tableMeta{b: b, chg: t.n}}
	}
	switch {
	case foreignKey == nil || joiner == nil:
		return fail("needs a foreign-key extractor and a joiner")
	case t.ks == nil || t.vs == nil:
		return fail("the left table %s needs key and value serdes (give MapTableValues its valueSerde)", t.n.name)
	case other.ks == nil || other.vs == nil:
		return fail("the right table %s needs key and value serdes (give MapTableValues its valueSerde)", other.n.name)
	case m.KeySerde == nil:
		return fail("the result needs a key serde (Materialized)")
	}
	lm, rm := t.changes(), other.changes()
	lg, rg := t.valueGetter(), other.valueGetter()
	if lg == nil || rg == nil {
		return fail("a table cannot be read by key")
	}
	if rg.noTS != "" {
		return fail("%s", rg.noTS)
	}
	// As in Kafka Streams, both sides send old values: the left side to
	// unsubscribe from a foreign key it no longer refers to, the right side
	// so that a filter upstream forwards only the updates that change it.
	lm.enableSendingOldValues()
	rm.enableSendingOldValues()
	ks, vs, fks, vos := t.ks, t.vs, other.ks, other.vs
	subTopic := name + "-subscription-registration-topic"
	respTopic := name + "-subscription-response-topic"
	subStore := name + "-subscription-store"
	b.AddStore(KeyValueStoreBuilder(subStore, Bytes(), Bytes(), WithoutDedup()))

	// Left side: subscribe (SubscriptionSendProcessorSupplier).
	send := addProcessor(b, name+"-subscription-registration-processor", func() Processor[K, change[V], []byte, fkSubscription] {
		return &funcProcessor[K, change[V], []byte, fkSubscription]{
			process: func(ctx ProcessorContext[[]byte, fkSubscription], r Record[K, change[V]]) error {
				return fkSubscribe(ctx, r, foreignKey, left, ks, vs, fks)
			},
		}
	}, nil, true, lm.chg)
	addSinkTo(send, subTopic, true, Bytes(), Serde[fkSubscription](fkSubscriptionSerde{}), nil)

	// Right side: keep the subscriptions and answer them
	// (SubscriptionReceiveProcessorSupplier and
	// SubscriptionJoinProcessorSupplier).
	subs := source(b, subTopic, true, Bytes(), Serde[fkSubscription](fkSubscriptionSerde{}))
	recvStores := append([]string{subStore}, rg.stores...)
	recv := addProcessor(b, name+"-subscription-receive", func() Processor[[]byte, fkSubscription, []byte, fkResponse] {
		var store *kvStore[[]byte, []byte]
		var lookup func(k KO) (timedValue[VO], bool, error)
		return &funcProcessor[[]byte, fkSubscription, []byte, fkResponse]{
			init: func(ctx ProcessorContext[[]byte, fkResponse]) (err error) {
				if store, err = fkStore(ctx, subStore); err != nil {
					return err
				}
				lookup, err = rg.open(ctx)
				return err
			},
			process: func(ctx ProcessorContext[[]byte, fkResponse], r Record[[]byte, fkSubscription]) error {
				return fkReceive(ctx, r, store, lookup, fks, vos)
			},
		}
	}, recvStores, true, subs.n)
	// ... and answer every subscriber of a right key that changes
	// (ForeignTableJoinProcessorSupplier).
	rs := &Stream[KO, change[VO]]{b: b, n: rm.chg}
	fanOut := addProcessor(b, name+"-foreign-join-subscription", func() Processor[KO, change[VO], []byte, fkResponse] {
		var store *kvStore[[]byte, []byte]
		return &funcProcessor[KO, change[VO], []byte, fkResponse]{
			init: func(ctx ProcessorContext[[]byte, fkResponse]) (err error) {
				store, err = fkStore(ctx, subStore)
				return err
			},
			process: func(ctx ProcessorContext[[]byte, fkResponse], r Record[KO, change[VO]]) error {
				return fkFanOut(ctx, r, store, fks, vos)
			},
		}
	}, []string{subStore}, true, rs.n)
	answers := addProcessor(b, name+"-subscription-response-sink-merge", func() Processor[[]byte, fkResponse, []byte, fkResponse] {
		return passThrough[[]byte, fkResponse]()
	}, nil, true, recv.n, fanOut.n)
	addSinkTo(answers, respTopic, true, Bytes(), Serde[fkResponse](fkResponseSerde{}),
		func(r Record[[]byte, fkResponse]) int32 { return r.Value.partition })

	// Left side: join the answers that are not stale and keep the result
	// (ResponseJoinProcessorSupplier, then the result table).
	b.AddStore(tableStoreBuilder(m.StoreName, m.KeySerde, m.ValueSerde, m.Options...))
	resp := source(b, respTopic, true, Bytes(), Serde[fkResponse](fkResponseSerde{}))
	store := m.StoreName
	meta := &tableMeta{b: b, getter: storeGetter[K, VR](store)}
	resolveStores := append([]string{store}, lg.stores...)
	out := addProcessor(b, name+"-subscription-response-resolver", func() Processor[[]byte, fkResponse, K, change[VR]] {
		var res *tableStore[K, VR]
		var lookup func(k K) (timedValue[V], bool, error)
		return &funcProcessor[[]byte, fkResponse, K, change[VR]]{
			init: func(ctx ProcessorContext[K, change[VR]]) (err error) {
				if res, err = getTableStore[K, VR](ctx, store); err != nil {
					return err
				}
				lookup, err = lg.open(ctx)
				return err
			},
			process: func(ctx ProcessorContext[K, change[VR]], r Record[[]byte, fkResponse]) error {
				k, err := ks.Deserialize(r.Key)
				if err != nil {
					return err
				}
				cur, found, err := lookup(k)
				if err != nil {
					return err
				}
				var curHash []byte
				if found {
					vb, err := vs.Serialize(cur.value)
					if err != nil {
						return err
					}
					curHash = fkHash(vb)
				}
				if !bytes.Equal(r.Value.hash, curHash) {
					// The left value changed since the subscription: a
					// newer answer follows.
					return nil
				}
				var result *VR
				if found && (r.Value.value != nil || left) {
					var vo *VO
					if r.Value.value != nil {
						v, err := vos.Deserialize(r.Value.value)
						if err != nil {
							return err
						}
						vo = &v
					}
					v := joiner(cur.value, vo)
					result = &v
				}
				old, had, err := res.getTimed(k)
				if err != nil {
					return err
				}
				if result == nil {
					err = res.delete(k)
				} else {
					err = res.put(k, *result, r.Timestamp)
				}
				if err != nil {
					return err
				}
				c := change[VR]{New: result}
				if meta.sendOld && had {
					c.Old = &old.value
				}
				ctx.Forward(Record[K, change[VR]]{Key: k, Value: c, Timestamp: r.Timestamp, Headers: r.Headers})
				return nil
			},
		}
	}, resolveStores, false, resp.n)
	meta.chg = out.n
	return &Table[K, VR]{b: b, n: out.n, ks: m.KeySerde, vs: m.ValueSerde, store: store, meta: meta}
}

// fkStore opens the subscription store.
func fkStore(ctx storeCtx, name string) (*kvStore[[]byte, []byte], error) {
	st, err := ctx.Store(name)
	if err != nil {
		return nil, err
	}
	s, ok := st.(*kvStore[[]byte, []byte])
	if !ok {
		return nil, fmt.Errorf("%w: %q is a %T, not a foreign-key join's subscription store", ErrStoreNotFound, name, st)
	}
	return s, nil
}

// fkSubscribe sends the subscriptions an update of the left table makes
// (Kafka Streams' SubscriptionSendProcessorSupplier): it unsubscribes from
// a foreign key the entry no longer refers to and subscribes to the new
// one, asking for an answer only when one is needed.
func fkSubscribe[K, V, KO any](ctx ProcessorContext[[]byte, fkSubscription], r Record[K, change[V]], foreignKey func(K, V) (KO, bool), left bool, ks Serde[K], vs Serde[V], fks Serde[KO]) error {
	c := r.Value
	extract := func(v *V) ([]byte, bool, error) {
		if v == nil {
			return nil, false, nil
		}
		fk, ok := foreignKey(r.Key, *v)
		if !ok {
			return nil, false, nil
		}
		b, err := fks.Serialize(fk)
		if err == nil && b == nil {
			b = []byte{}
		}
		return b, err == nil, err
	}
	oldFK, hasOld, err := extract(c.Old)
	if err != nil {
		return err
	}
	newFK, hasNew, err := extract(c.New)
	if err != nil {
		return err
	}
	var pk, hash []byte
	serialized := false
	send := func(fk []byte, hasFK bool, instr fkInstruction) error {
		if !serialized {
			serialized = true
			if pk, err = ks.Serialize(r.Key); err != nil {
				return err
			}
			if c.New != nil {
				vb, err := vs.Serialize(*c.New)
				if err != nil {
					return err
				}
				hash = fkHash(vb)
			}
		}
		ctx.Forward(Record[[]byte, fkSubscription]{Key: fk, Timestamp: r.Timestamp, Headers: r.Headers,
			Value: fkSubscription{instr: instr, hash: hash, hasFK: hasFK, partition: ctx.TaskID().Partition, pk: pk}})
		return nil
	}
	changed := hasOld && (!hasNew || !bytes.Equal(oldFK, newFK))
	if left {
		if c.Old == nil && c.New == nil {
			return nil // deleting an absent entry
		}
		if changed {
			// The new subscription may go to another partition: the old
			// one is removed explicitly.
			if err := send(oldFK, true, fkDeleteNoPropagate); err != nil {
				return err
			}
		}
		// Always answered (even for a deletion, or no foreign key), so the
		// left join always has a result or a deletion to forward.
		return send(newFK, hasNew, fkPropagateNullIfNoFK)
	}
	switch {
	case c.New != nil && !hasNew:
		ctx.RecordDropped("null foreign key")
		if hasOld {
			return send(oldFK, true, fkDeleteAndPropagate)
		}
	case c.New != nil && changed:
		if err := send(oldFK, true, fkDeleteNoPropagate); err != nil {
			return err
		}
		// Answered even without a right value, to delete the previous
		// result.
		return send(newFK, true, fkPropagateNullIfNoFK)
	case c.New != nil:
		// A new entry, or the same foreign key: no previous result to
		// delete when the foreign key has no value.
		return send(newFK, true, fkPropagateOnlyIfFK)
	case hasOld:
		return send(oldFK, true, fkDeleteAndPropagate)
	}
	return nil
}

// fkReceive keeps or removes a subscription and answers it (Kafka Streams'
// SubscriptionReceiveProcessorSupplier and
// SubscriptionJoinProcessorSupplier). The answer's timestamp is the larger
// of the subscription's and the right value's.
func fkReceive[KO, VO any](ctx ProcessorContext[[]byte, fkResponse], r Record[[]byte, fkSubscription], store *kvStore[[]byte, []byte], lookup func(KO) (timedValue[VO], bool, error), fks Serde[KO], vos Serde[VO]) error {
	s := r.Value
	if !s.hasFK && s.instr != fkPropagateNullIfNoFK {
		ctx.RecordDropped("null foreign key")
		return nil
	}
	var right timedValue[VO]
	var found bool
	if s.hasFK {
		fkb := r.Key
		if fkb == nil {
			fkb = []byte{}
		}
		key := append(fkPrefix(fkb), s.pk...)
		var err error
		if s.instr == fkDeleteAndPropagate || s.instr == fkDeleteNoPropagate {
			err = store.Delete(key)
		} else {
			var vb []byte
			if vb, err = (fkSubscriptionSerde{}).Serialize(s); err == nil {
				err = store.Put(key, vb)
			}
		}
		if err != nil {
			return err
		}
		fk, err := fks.Deserialize(fkb)
		if err != nil {
			return err
		}
		if right, found, err = lookup(fk); err != nil {
			return err
		}
	}
	ts := r.Timestamp
	if found && right.ts > ts.UnixMilli() {
		ts = time.UnixMilli(right.ts)
	}
	answer := func(withValue bool) error {
		resp := fkResponse{hash: s.hash, partition: s.partition}
		if withValue {
			vb, err := vos.Serialize(right.value)
			if err != nil {
				return err
			}
			if vb == nil {
				vb = []byte{}
			}
			resp.value = vb
		}
		ctx.Forward(Record[[]byte, fkResponse]{Key: s.pk, Value: resp, Timestamp: ts, Headers: r.Headers})
		return nil
	}
	switch s.instr {
	case fkDeleteAndPropagate:
		return answer(false)
	case fkPropagateNullIfNoFK:
		return answer(found)
	case fkPropagateOnlyIfFK:
		if found {
			return answer(true)
		}
	}
	return nil
}

// fkFanOut answers every subscriber of a right key that changed, with the
// update's timestamp (Kafka Streams' ForeignTableJoinProcessorSupplier).
// Subscribers are answered in the order of their serialized left keys.
func fkFanOut[KO, VO any](ctx ProcessorContext[[]byte, fkResponse], r Record[KO, change[VO]], store *kvStore[[]byte, []byte], fks Serde[KO], vos Serde[VO]) error {
	fkb, err := fks.Serialize(r.Key)
	if err != nil {
		return err
	}
	var vb []byte
	if r.Value.New != nil {
		if vb, err = vos.Serialize(*r.Value.New); err != nil {
			return err
		}
		if vb == nil {
			vb = []byte{}
		}
	}
	prefix := fkPrefix(fkb)
	it, err := store.iter(prefix, fkPrefixEnd(prefix))
	if err != nil {
		return err
	}
	// Read them all before forwarding: nothing downstream touches the
	// store, but the iterator is not held across other work.
	var subs []fkSubscription
	for it.Next() {
		s, err := (fkSubscriptionSerde{}).Deserialize(it.Value())
		if err != nil {
			_ = it.Close()
			return err
		}
		subs = append(subs, s)
	}
	err = it.Err()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	for _, s := range subs {
		ctx.Forward(Record[[]byte, fkResponse]{Key: s.pk, Value: fkResponse{hash: s.hash, value: vb, partition: s.partition},
			Timestamp: r.Timestamp, Headers: r.Headers})
	}
	return nil
}
