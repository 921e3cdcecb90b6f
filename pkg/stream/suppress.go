package stream

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/btree"
)

// Suppressed configures Table.Suppress: Kafka Streams'
// Suppressed.untilTimeLimit with its BufferConfig.
type Suppressed[K, V any] struct {
	// TimeLimit is how long, in stream time, the first update of a key
	// waits in the buffer: the key's latest value is forwarded once the
	// stream time the suppression has seen reaches the timestamp of that
	// first update plus TimeLimit. Updates that come meanwhile replace the
	// buffered value without restarting the wait.
	TimeLimit time.Duration
	// MaxRecords bounds the buffer's keys (0: no bound). Beyond it the
	// oldest buffered keys are forwarded early, or, with ShutDownWhenFull,
	// the task fails.
	MaxRecords int
	// ShutDownWhenFull fails the task instead of forwarding early when
	// the buffer is over MaxRecords (Kafka Streams'
	// BufferConfig.shutDownWhenFull).
	ShutDownWhenFull bool
	// Name names the processor and, with "-buffer", the buffer's store
	// (default: generated).
	Name string
	// KeySerde stores the buffer's keys; by default the table's.
	KeySerde Serde[K]
	// ValueSerde stores the buffer's values; by default the table's.
	ValueSerde Serde[V]
}

// Suppress holds back the table's updates (Kafka Streams'
// KTable.suppress(Suppressed.untilTimeLimit(...))): each key's updates wait
// in a buffer, kept in a store with a changelog, and only the latest is
// forwarded, with the timestamp and headers of the update that set it,
// once stream time passes the key's first buffered update by TimeLimit.
// Buffered keys are forwarded in the order of that first update's
// timestamp (then key bytes). A deletion is forwarded like a value. The
// stream time is the largest timestamp the suppression has seen (not the
// task's), starting again after a restart, as in Kafka Streams.
//
// Reading the suppressed table by key (a join) gives, for a buffered key,
// the value last forwarded; that needs the table above to send old values,
// which Suppress turns on — except on a table made by a stream aggregation,
// whose suppressed result cannot then be read by key.
func (t *Table[K, V]) Suppress(s Suppressed[K, V]) *Table[K, V] {
	b := t.b
	name := s.Name
	if name == "" {
		name = b.newName("KTABLE-SUPPRESS")
	}
	if s.KeySerde == nil {
		s.KeySerde = t.ks
	}
	if s.ValueSerde == nil {
		s.ValueSerde = t.vs
	}
	up := t.changes()
	fail := func(err error) *Table[K, V] {
		b.fail(err)
		return &Table[K, V]{b: b, n: t.n, meta: &tableMeta{b: b, chg: up.chg}}
	}
	switch {
	case s.TimeLimit < 0:
		return fail(fmt.Errorf("%w: %s: a negative time limit", ErrInvalidTopology, name))
	case s.MaxRecords < 0:
		return fail(fmt.Errorf("%w: %s: a negative MaxRecords", ErrInvalidTopology, name))
	case s.KeySerde == nil || s.ValueSerde == nil:
		return fail(fmt.Errorf("%w: %s: the buffer needs the table's key and value serdes (Suppressed.KeySerde, ValueSerde)", ErrInvalidTopology, name))
	case t.valueGetter() != nil && t.valueGetter().asOf != nil:
		// As Kafka Streams: "suppress() is only supported for non-versioned KTables".
		return fail(fmt.Errorf("%w: %s: suppressing a versioned table is not supported", ErrInvalidTopology, name))
	}
	store := name + "-buffer"
	b.AddStore(KeyValueStoreBuilder(store, Bytes(), Bytes()))
	meta := &tableMeta{b: b, up: []*tableMeta{up}}
	// The prior value view needs old values from above (Kafka Streams turns
	// them on too); a stream aggregation's table has none.
	var getter *valueGetter[K, V]
	if up.noOld == "" {
		up.enableSendingOldValues()
		if g := t.valueGetter(); g != nil {
			getter = suppressedGetter(g, store, s)
		}
	}
	meta.getter = getter
	n := addProcessor(b, name, func() Processor[K, change[V], K, change[V]] {
		return &suppressProc[K, V]{cfg: s, store: store, meta: meta, limit: s.TimeLimit.Milliseconds(), observed: noTime}
	}, []string{store}, false, up.chg).n
	meta.chg = n
	return &Table[K, V]{b: b, n: n, ks: s.KeySerde, vs: s.ValueSerde, meta: meta}
}

// noTime is the stream time of a suppression that has seen no record.
const noTime = -1 << 63

// bufKey orders the buffer: first buffered update's time, then key bytes.
type bufKey struct {
	time int64
	key  string
}

func bufLess(a, b bufKey) bool {
	if a.time != b.time {
		return a.time < b.time
	}
	return a.key < b.key
}

// bufEntry is a buffered key: when its first buffered update came (time),
// the value the table had before it (prior, for reads by key), the latest
// update (cur) with the value it replaced (old, forwarded with it, as Kafka
// Streams' buffer does), and that update's timestamp and headers.
type bufEntry struct {
	time     int64
	ts       int64
	prior    []byte // nil: none
	hasPrior bool
	cur      []byte // nil: a deletion
	hasCur   bool
	old      []byte
	hasOld   bool
	headers  []Header
}

// encode: time, ts (8 bytes each), flags (1: prior, 2: cur, 4: old), the
// lengths (4 bytes) and bytes of prior, cur and old, header count (2), then
// each header's key and value lengths (2 and 4) and bytes.
func (e bufEntry) encode() []byte {
	out := make([]byte, 17, 17+8+len(e.prior)+len(e.cur))
	binary.BigEndian.PutUint64(out, uint64(e.time))
	binary.BigEndian.PutUint64(out[8:], uint64(e.ts))
	if e.hasPrior {
		out[16] |= 1
	}
	if e.hasCur {
		out[16] |= 2
	}
	if e.hasOld {
		out[16] |= 4
	}
	for _, b := range [][]byte{e.prior, e.cur, e.old} {
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	out = binary.BigEndian.AppendUint16(out, uint16(len(e.headers)))
	for _, h := range e.headers {
		out = binary.BigEndian.AppendUint16(out, uint16(len(h.Key)))
		out = append(out, h.Key...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(h.Value)))
		out = append(out, h.Value...)
	}
	return out
}

func decodeBufEntry(b []byte) (bufEntry, error) {
	var e bufEntry
	bad := func() (bufEntry, error) {
		return bufEntry{}, &SerdeError{Format: "suppression buffer entry", Err: fmt.Errorf("malformed (%d bytes)", len(b))}
	}
	if len(b) < 31 {
		return bad()
	}
	e.time = int64(binary.BigEndian.Uint64(b))
	e.ts = int64(binary.BigEndian.Uint64(b[8:]))
	e.hasPrior, e.hasCur, e.hasOld = b[16]&1 != 0, b[16]&2 != 0, b[16]&4 != 0
	rest := b[17:]
	take := func(n int) []byte {
		if n > len(rest) {
			return nil
		}
		out := rest[:n:n]
		rest = rest[n:]
		return out
	}
	for _, dst := range []*[]byte{&e.prior, &e.cur, &e.old} {
		if len(rest) < 4 {
			return bad()
		}
		n := int(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if n > len(rest) {
			return bad()
		}
		*dst = take(n)
	}
	if len(rest) < 2 {
		return bad()
	}
	nh := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	for range nh {
		if len(rest) < 2 {
			return bad()
		}
		kn := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if kn+4 > len(rest) {
			return bad()
		}
		k := string(take(kn))
		vn := int(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if vn > len(rest) {
			return bad()
		}
		e.headers = append(e.headers, Header{Key: k, Value: take(vn)})
	}
	if !e.hasPrior {
		e.prior = nil
	}
	if !e.hasCur {
		e.cur = nil
	}
	if !e.hasOld {
		e.old = nil
	}
	return e, nil
}

type suppressProc[K, V any] struct {
	cfg      Suppressed[K, V]
	store    string
	meta     *tableMeta
	limit    int64
	observed int64
	buf      KeyValueStore[[]byte, []byte]
	index    *btree.BTreeG[bufKey]
	times    map[string]int64 // key bytes -> its bufKey time
}

func (p *suppressProc[K, V]) Init(ctx ProcessorContext[K, change[V]]) error {
	var err error
	if p.buf, err = GetKeyValueStore[[]byte, []byte](ctx, p.store); err != nil {
		return err
	}
	p.index = btree.NewG(16, bufLess)
	p.times = map[string]int64{}
	// The buffer survives restarts in its store; rebuild the order.
	it, err := p.buf.All()
	if err != nil {
		return err
	}
	defer it.Close()
	for it.Next() {
		e, err := decodeBufEntry(it.Value())
		if err != nil {
			return err
		}
		k := string(it.Key())
		p.index.ReplaceOrInsert(bufKey{e.time, k})
		p.times[k] = e.time
	}
	return it.Err()
}

func (p *suppressProc[K, V]) Process(ctx ProcessorContext[K, change[V]], r Record[K, change[V]]) error {
	ts := r.Timestamp.UnixMilli()
	p.observed = max(p.observed, ts)
	kb, err := p.cfg.KeySerde.Serialize(r.Key)
	if err != nil {
		return err
	}
	ser := func(v *V) ([]byte, bool, error) {
		if v == nil {
			return nil, false, nil
		}
		b, err := p.cfg.ValueSerde.Serialize(*v)
		if b == nil {
			b = []byte{}
		}
		return b, true, err
	}
	e := bufEntry{time: ts, ts: ts, headers: r.Headers}
	if t, buffered := p.times[string(kb)]; buffered {
		raw, found, err := p.buf.Get(kb)
		if err != nil {
			return err
		}
		if found {
			old, err := decodeBufEntry(raw)
			if err != nil {
				return err
			}
			e.prior, e.hasPrior = old.prior, old.hasPrior
		}
		e.time = t
	} else if e.prior, e.hasPrior, err = ser(r.Value.Old); err != nil {
		return err
	}
	if e.cur, e.hasCur, err = ser(r.Value.New); err != nil {
		return err
	}
	if e.old, e.hasOld, err = ser(r.Value.Old); err != nil {
		return err
	}
	if err := p.buf.Put(kb, e.encode()); err != nil {
		return err
	}
	if _, buffered := p.times[string(kb)]; !buffered {
		p.times[string(kb)] = e.time
		p.index.ReplaceOrInsert(bufKey{e.time, string(kb)})
	}
	return p.enforce(ctx)
}

// enforce forwards what is due and what the bound does not allow to keep.
func (p *suppressProc[K, V]) enforce(ctx ProcessorContext[K, change[V]]) error {
	expiry := p.observed - p.limit
	for p.index.Len() > 0 {
		first, _ := p.index.Min()
		over := p.cfg.MaxRecords > 0 && p.index.Len() > p.cfg.MaxRecords
		if first.time > expiry && !over {
			return nil
		}
		if first.time > expiry && over && p.cfg.ShutDownWhenFull {
			return fmt.Errorf("stream: suppression buffer %s over its MaxRecords (%d keys, at most %d)", p.store, p.index.Len(), p.cfg.MaxRecords)
		}
		if err := p.emit(ctx, first); err != nil {
			return err
		}
	}
	return nil
}

// emit forwards and removes the buffered key bk.
func (p *suppressProc[K, V]) emit(ctx ProcessorContext[K, change[V]], bk bufKey) error {
	p.index.Delete(bk)
	delete(p.times, bk.key)
	kb := []byte(bk.key)
	raw, found, err := p.buf.Get(kb)
	if err != nil {
		return err
	}
	if err := p.buf.Delete(kb); err != nil {
		return err
	}
	if !found {
		return nil
	}
	e, err := decodeBufEntry(raw)
	if err != nil {
		return err
	}
	k, err := p.cfg.KeySerde.Deserialize(kb)
	if err != nil {
		return err
	}
	de := func(b []byte, ok bool) (*V, error) {
		if !ok {
			return nil, nil
		}
		v, err := p.cfg.ValueSerde.Deserialize(b)
		return &v, err
	}
	var c change[V]
	if c.New, err = de(e.cur, e.hasCur); err != nil {
		return err
	}
	if p.meta.sendOld {
		if c.Old, err = de(e.old, e.hasOld); err != nil {
			return err
		}
	}
	ctx.Forward(Record[K, change[V]]{Key: k, Value: c, Timestamp: time.UnixMilli(e.ts), Headers: e.headers})
	return nil
}

func (p *suppressProc[K, V]) Close() error { return nil }

// suppressedGetter reads the suppressed table: a buffered key's value
// before its buffered updates, any other key's from the table above.
func suppressedGetter[K, V any](up *valueGetter[K, V], store string, s Suppressed[K, V]) *valueGetter[K, V] {
	return &valueGetter[K, V]{stores: append([]string{store}, up.stores...), noTS: up.noTS,
		open: func(ctx storeCtx) (func(k K) (timedValue[V], bool, error), error) {
			get, err := up.open(ctx)
			if err != nil {
				return nil, err
			}
			buf, err := GetKeyValueStore[[]byte, []byte](ctx, store)
			if err != nil {
				return nil, err
			}
			return func(k K) (timedValue[V], bool, error) {
				kb, err := s.KeySerde.Serialize(k)
				if err != nil {
					return timedValue[V]{}, false, err
				}
				raw, found, err := buf.Get(kb)
				if err != nil || !found {
					if err != nil {
						return timedValue[V]{}, false, err
					}
					return get(k)
				}
				e, err := decodeBufEntry(raw)
				if err != nil || !e.hasPrior {
					return timedValue[V]{}, false, err
				}
				v, err := s.ValueSerde.Deserialize(e.prior)
				// (The prior value's timestamp is not kept: as Kafka
				// Streams' buffer, which keeps no timestamp for it.)
				return timedValue[V]{value: v}, err == nil, err
			}, nil
		}}
}
