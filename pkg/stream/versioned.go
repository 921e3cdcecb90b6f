package stream

// versioned.go holds versioned tables (Kafka Streams' versioned key-value
// stores, KIP-889, and their DSL semantics, KIP-914): the store that keeps
// each key's history of values, VersionedTableSource, and the reads "as of"
// a timestamp that stream–table joins make.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"time"

	"github.com/emostream/emostream/pkg/stream/internal/kv"
)

// VersionedTableSource adds a table read from topic whose store keeps the
// history of each key's values (Kafka Streams' StreamsBuilder.table with
// Materialized.as(Stores.persistentVersionedKeyValueStore(name,
// historyRetention))).
//
// A record puts a version of its key, valid from the record's timestamp
// until the timestamp of the key's next version; a tombstone puts a
// deletion valid from its timestamp. So a record older than the key's
// latest version (out of order) goes into the history and does not
// replace the latest value. The store's stream time is the largest
// timestamp put so far; a record older than that stream time minus
// historyRetention is dropped (not stored, not forwarded, counted in
// stream_dropped_records_total{reason="expired"}), as is a record with a
// null key. Every other record is forwarded with its timestamp, out of
// order or not (as Kafka Streams' KTable.toStream of a versioned table
// does), a deletion as a nil value. As in Kafka Streams' store, a deletion
// with the very timestamp of a key's value that no earlier value ends at
// (the key's first value, or one after a deletion) removes that value
// without a trace: reads see no value from then on, but a later
// out-of-order value before that time becomes the latest value.
//
// Queries (QueryStore: Get, Range, All) see each key's latest value.
// A stream–table join (JoinTable, LeftJoinTable) reads the value the key
// had at the stream record's timestamp, and its Joined.Grace can hold
// stream records back so that table updates arriving a little late are
// still seen. A read as of a time older than stream time minus
// historyRetention sees only the latest value, and only when that is not
// newer than the time read.
//
// The store (name it with m's StoreName; by default <node>-STATE-STORE)
// keeps each version as its own entry and changelog record, keyed by the
// record's key and the version's timestamp, so a new instance restores the
// whole history. Versions that can no longer be read (their validity ended
// more than historyRetention before stream time) are deleted, from the
// store and its changelog, when their key is next written, and by a sweep
// of the whole store every so many puts (as many as the store had
// entries at the last sweep, at least 1024).
//
// A versioned table can be filtered, mapped, turned into a stream and
// joined with a stream. Grouping it (GroupTableBy), joining it with
// another table and Suppress are not supported yet: they fail with
// ErrInvalidTopology.
func VersionedTableSource[K, V any](b *Builder, topic string, keySerde Serde[K], valueSerde Serde[V], historyRetention time.Duration, m ...Materialized[K, V]) *Table[K, V] {
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
	invalid := func(err error) *Table[K, V] {
		b.fail(err)
		return &Table[K, V]{b: b, n: &node{name: "invalid"}, meta: &tableMeta{b: b}}
	}
	if keySerde == nil || valueSerde == nil || cfg.KeySerde == nil || cfg.ValueSerde == nil {
		return invalid(fmt.Errorf("%w: versioned table %q needs a key and a value serde", ErrInvalidTopology, topic))
	}
	if historyRetention < 0 {
		return invalid(fmt.Errorf("%w: versioned table %q: a negative history retention (%v)", ErrInvalidTopology, topic, historyRetention))
	}
	src := source(b, topic, false, TombstoneSerde(keySerde), TombstoneSerde(valueSerde))
	name := b.newName("KTABLE-SOURCE")
	if cfg.StoreName == "" {
		cfg.StoreName = name + "-STATE-STORE"
	}
	store := cfg.StoreName
	b.AddStore(versionedStoreBuilder(store, cfg.KeySerde, cfg.ValueSerde, historyRetention.Milliseconds(), cfg.Options...))
	meta := &tableMeta{b: b, getter: versionedGetter[K, V](store, historyRetention),
		noOld: fmt.Sprintf("table %s is versioned: grouping it, joining it with a table or suppressing it is not supported yet", name)}
	out := addProcessor(b, name, func() Processor[*K, *V, K, change[V]] {
		return &versionedSourceProc[K, V]{store: store}
	}, []string{store}, false, src.n)
	meta.chg = out.n
	return &Table[K, V]{b: b, n: out.n, ks: cfg.KeySerde, vs: cfg.ValueSerde, store: store, meta: meta}
}

type versionedSourceProc[K, V any] struct {
	store string
	s     *versionedStore[K, V]
}

func (p *versionedSourceProc[K, V]) Init(ctx ProcessorContext[K, change[V]]) (err error) {
	p.s, err = getVersionedStore[K, V](ctx, p.store)
	return err
}

// Process follows Kafka Streams' KTableSource over a versioned store: the
// record is put, and forwarded unless the store dropped it as expired.
func (p *versionedSourceProc[K, V]) Process(ctx ProcessorContext[K, change[V]], r Record[*K, *V]) error {
	if r.Key == nil {
		ctx.RecordDropped("null key")
		return nil
	}
	stored, err := p.s.put(*r.Key, r.Value, r.Timestamp.UnixMilli())
	if err != nil {
		return err
	}
	if !stored {
		ctx.RecordDropped("expired")
		return nil
	}
	ctx.Forward(Record[K, change[V]]{Key: *r.Key, Value: change[V]{New: r.Value}, Timestamp: r.Timestamp, Headers: r.Headers})
	return nil
}

func (p *versionedSourceProc[K, V]) Close() error { return nil }

// versionedGetter reads a versioned table store: the latest value, or the
// value as of a time.
func versionedGetter[K, V any](store string, history time.Duration) *valueGetter[K, V] {
	return &valueGetter[K, V]{stores: []string{store}, history: history,
		open: func(ctx storeCtx) (func(k K) (timedValue[V], bool, error), error) {
			s, err := getVersionedStore[K, V](ctx, store)
			if err != nil {
				return nil, err
			}
			return s.latest, nil
		},
		asOf: func(ctx storeCtx) (func(k K, ts int64) (timedValue[V], bool, error), error) {
			s, err := getVersionedStore[K, V](ctx, store)
			if err != nil {
				return nil, err
			}
			return s.getAsOf, nil
		}}
}

// versionedStore is the store of a versioned table. Each version is one
// entry of the underlying key-value store (so one changelog record):
//
//	key:   the serialized key, escaped (0x00 -> 0x00 0xFF), then 0x00 0x00,
//	       then the version's timestamp (8 bytes, big-endian, sign bit
//	       flipped)
//	value: 0 then the serialized value, or 1 for a deletion
//
// The escaping keeps the keys' byte order and makes a key's versions
// contiguous, oldest first. Queries (QueryStore[K, V]) see the latest
// values; the table's processors and joins also read as of a time.
type versionedStore[K, V any] struct {
	inner     *kvStore[[]byte, []byte]
	ks        Serde[K]
	vs        Serde[V]
	retention int64 // ms
	// observed is the store's stream time (noTime: nothing put), read from
	// the entries on first use by the task (after the restore): the
	// largest version timestamp, which no cleanup removes.
	observed int64
	loaded   bool
	// puts counts the puts since the last sweep of the whole store, which
	// comes once they reach sweepAt (the number of entries then, at least
	// minSweep): versions of keys that are not written any more go too,
	// at an amortized constant cost per put.
	puts, sweepAt int64
}

// minSweep is the fewest puts between two sweeps of a versioned store.
const minSweep = 1024

// versionedStoreBuilder describes the store of a versioned table.
func versionedStoreBuilder[K, V any](name string, keySerde Serde[K], valueSerde Serde[V], retention int64, opts ...StoreOpt) StoreBuilder {
	s := &storeSpec{name: name}
	for _, o := range opts {
		o.applyStore(s)
	}
	s.open = func(c *storeCore) StateStore {
		return &versionedStore[K, V]{inner: newKVStore(c, Bytes(), Bytes(), s.noDedup),
			ks: keySerde, vs: valueSerde, retention: retention, observed: noTime, sweepAt: minSweep}
	}
	return s
}

// getVersionedStore returns the versioned table store named name.
func getVersionedStore[K, V any](ctx storeCtx, name string) (*versionedStore[K, V], error) {
	st, err := ctx.Store(name)
	if err != nil {
		return nil, err
	}
	vs, ok := st.(*versionedStore[K, V])
	if !ok {
		return nil, fmt.Errorf("%w: %q is a %T, not a versioned table store of the requested types", ErrStoreNotFound, name, st)
	}
	return vs, nil
}

// versionPrefix is the encoded key part of kb's versions: every version
// key of kb starts with it, and no other key does.
func versionPrefix(kb []byte) []byte {
	out := make([]byte, 0, len(kb)+2+8)
	for _, c := range kb {
		out = append(out, c)
		if c == 0 {
			out = append(out, 0xFF)
		}
	}
	return append(out, 0, 0)
}

// prefixEnd is the smallest key after every key that starts with the
// version prefix p (which ends in 0x00 0x00).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	end[len(end)-1] = 1
	return end
}

func versionKey(prefix []byte, ts int64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(ts)^(1<<63))
}

// splitVersionKey returns the version prefix and the timestamp of an entry's key.
func splitVersionKey(k []byte) (prefix []byte, ts int64, err error) {
	if len(k) < 10 || k[len(k)-10] != 0 || k[len(k)-9] != 0 {
		return nil, 0, fmt.Errorf("stream: corrupt versioned store key of %d bytes", len(k))
	}
	return k[:len(k)-8], int64(binary.BigEndian.Uint64(k[len(k)-8:]) ^ (1 << 63)), nil
}

// unescapeKey returns the serialized key of a version prefix.
func unescapeKey(prefix []byte) ([]byte, error) {
	p := prefix[:len(prefix)-2]
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		out = append(out, p[i])
		if p[i] == 0 {
			if i+1 >= len(p) || p[i+1] != 0xFF {
				return nil, fmt.Errorf("stream: corrupt versioned store key")
			}
			i++
		}
	}
	return out, nil
}

// version is one stored version: its timestamp, and its value (tomb: a
// deletion).
type version struct {
	ts    int64
	tomb  bool
	value []byte
	key   []byte // the entry's key
	// tag is the entry's first byte: verValue, verTomb, verTombAlone or
	// verValueAnchored (see put).
	tag byte
}

// The kinds of version entries (their first byte). Kafka Streams' store
// keeps a key's older versions as segment records valid from one
// timestamp to the next version's, except a deletion written when nothing
// came after it, whose record ends where it starts (a "degenerate" one)
// and is never linked to versions put after it. Whether a deletion of the
// latest value at its own time leaves a trace depends on that (see put).
const (
	verValue         byte = 0 // a value
	verTomb          byte = 1 // a deletion valid until the next version
	verTombAlone     byte = 2 // a deletion written as the latest version
	verValueAnchored byte = 3 // a latest value that replaced a verTombAlone at its time
)

func decodeVersion(k, raw []byte) (version, error) {
	_, ts, err := splitVersionKey(k)
	if err != nil {
		return version{}, err
	}
	env, err := decodeEnvelope(raw)
	if err != nil {
		return version{}, err
	}
	if len(env.value) == 0 || env.value[0] > verValueAnchored {
		return version{}, fmt.Errorf("stream: corrupt versioned store value of %d bytes", len(env.value))
	}
	tag := env.value[0]
	return version{ts: ts, tomb: tag == verTomb || tag == verTombAlone, value: env.value[1:], key: k, tag: tag}, nil
}

// versions returns the versions of the serialized key kb, oldest first.
func (s *versionedStore[K, V]) versions(kb []byte) ([]version, error) {
	if s.inner.core.closed.Load() {
		return nil, ErrStoreClosed
	}
	p := versionPrefix(kb)
	it, err := s.inner.core.backend.Range(p, prefixEnd(p))
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []version
	for it.Next() {
		v, err := decodeVersion(bytes.Clone(it.Key()), it.Value())
		if err != nil {
			return nil, err
		}
		v.value = bytes.Clone(v.value)
		out = append(out, v)
	}
	return out, it.Err()
}

// load reads the store's stream time from its entries, once.
func (s *versionedStore[K, V]) load() error {
	if s.loaded {
		return nil
	}
	if s.inner.core.closed.Load() {
		return ErrStoreClosed
	}
	it, err := s.inner.core.backend.Range(nil, nil)
	if err != nil {
		return err
	}
	defer it.Close()
	for it.Next() {
		if len(it.Key()) == 0 {
			if len(it.Value()) != 8 {
				return fmt.Errorf("stream: corrupt stream time in versioned store %s", s.Name())
			}
			s.observed = max(s.observed, int64(binary.BigEndian.Uint64(it.Value())))
			continue
		}
		_, ts, err := splitVersionKey(it.Key())
		if err != nil {
			return err
		}
		s.observed = max(s.observed, ts)
	}
	if err := it.Err(); err != nil {
		return err
	}
	s.loaded = true
	return nil
}

// versionedMetaKey holds a versioned store's stream time (8 bytes) when
// the version that set it was deleted (see put); every version key is
// longer.
var versionedMetaKey = []byte{}

// cutoff is the store's stream time minus its history retention: reads
// as of an older time see only the latest value, and older puts are
// dropped. ok is false while nothing was put.
func (s *versionedStore[K, V]) cutoff() (int64, bool) {
	if s.observed == noTime {
		return 0, false
	}
	if s.observed < math.MinInt64+s.retention {
		return math.MinInt64, true
	}
	return s.observed - s.retention, true
}

// put stores v (nil: a deletion) as the version of k from ts, as Kafka
// Streams' RocksDBVersionedStore.put does; stored is false when ts is
// older than the history retention allows. A redelivered input already
// applied to that version is not applied again. Versions of k that can no
// longer be read are deleted, and every so often those of every key.
func (s *versionedStore[K, V]) put(k K, v *V, ts int64) (stored bool, err error) {
	if err := s.load(); err != nil {
		return false, err
	}
	if c, ok := s.cutoff(); ok && ts < c {
		return false, nil
	}
	s.observed = max(s.observed, ts)
	kb, err := s.ks.Serialize(k)
	if err != nil {
		return false, err
	}
	p := versionPrefix(kb)
	vs, err := s.versions(kb)
	if err != nil {
		return false, err
	}
	// The entry's kind (see verValue): a deletion is linked to the version
	// after it, or alone when none comes after it; a value that replaces a
	// lone deletion at its time as the latest version keeps that
	// deletion's record (Kafka Streams leaves it in its segment).
	n := len(vs)
	last := n == 0 || ts >= vs[n-1].ts
	tag := verValue
	switch {
	case v == nil && last:
		tag = verTombAlone
	case v == nil:
		tag = verTomb
	case n > 0 && vs[n-1].ts == ts && (vs[n-1].tag == verTombAlone || vs[n-1].tag == verValueAnchored):
		tag = verValueAnchored
	}
	val := []byte{tag}
	if v != nil {
		b, err := s.vs.Serialize(*v)
		if err != nil {
			return false, err
		}
		val = append(val, b...)
	}
	// One position-tracked write per record (a put, or the deletion
	// below): the cleanup writes without positions, so a redelivery makes
	// the same sequence of tracked writes (see KeyValueStore).
	if v == nil && n > 0 && vs[n-1].ts == ts && vs[n-1].tag == verValue && (n == 1 || vs[n-2].tag == verTombAlone) {
		// A deletion at the very time of the latest value, which no
		// earlier version's record ends at (there is none, or only a lone
		// deletion): Kafka Streams' store drops that value and keeps no
		// trace of the deletion, so a later out-of-order put before ts
		// becomes the latest value (its validity ends at no deletion).
		// Reads see the same as with a deletion. (With an earlier version
		// ending at ts, that version's end is the trace: the deletion is
		// stored below.)
		if err := s.inner.Delete(vs[n-1].key); err != nil {
			return false, err
		}
		vs = vs[:n-1]
		if ts == s.observed {
			// The stream time must survive a restore without that version.
			if err := s.inner.core.write(versionedMetaKey, binary.BigEndian.AppendUint64(nil, uint64(ts))); err != nil {
				return false, err
			}
		}
	} else {
		if err := s.inner.Put(versionKey(p, ts), val); err != nil {
			return false, err
		}
		if vs, err = s.versions(kb); err != nil {
			return false, err
		}
	}
	if err := s.deleteDead(vs); err != nil {
		return false, err
	}
	if s.puts++; s.puts >= s.sweepAt {
		return true, s.sweep()
	}
	return true, nil
}

// deleteDead deletes those of one key's versions (oldest first) that no
// read can reach any more: a version whose successor starts at or before
// the cutoff (reads as of a later time find the successor, reads as of an
// earlier time the latest value only), and a latest deletion older than
// the cutoff. The deletions are not position-tracked writes.
func (s *versionedStore[K, V]) deleteDead(vs []version) error {
	c, ok := s.cutoff()
	if !ok {
		return nil
	}
	for i, v := range vs {
		last := i == len(vs)-1
		if (last || vs[i+1].ts > c) && (!last || !v.tomb || v.ts >= c) {
			break
		}
		if err := s.inner.core.write(v.key, nil); err != nil {
			return err
		}
	}
	return nil
}

// sweep deletes the dead versions of every key.
func (s *versionedStore[K, V]) sweep() error {
	if s.inner.core.closed.Load() {
		return ErrStoreClosed
	}
	it, err := s.inner.core.backend.Range(nil, nil)
	if err != nil {
		return err
	}
	defer it.Close()
	var group []version
	var n int64
	flush := func() error {
		err := s.deleteDead(group)
		group = group[:0]
		return err
	}
	for it.Next() {
		if len(it.Key()) == 0 {
			continue // the stream time
		}
		n++
		v, err := decodeVersion(bytes.Clone(it.Key()), it.Value())
		if err != nil {
			return err
		}
		if len(group) > 0 && !bytes.Equal(group[0].key[:len(group[0].key)-8], v.key[:len(v.key)-8]) {
			if err := flush(); err != nil {
				return err
			}
		}
		group = append(group, version{ts: v.ts, tomb: v.tomb, key: v.key, tag: v.tag})
	}
	if err := it.Err(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	s.puts, s.sweepAt = 0, max(n, minSweep)
	return nil
}

func (s *versionedStore[K, V]) decode(v version) (timedValue[V], bool, error) {
	if v.tomb {
		return timedValue[V]{}, false, nil
	}
	val, err := s.vs.Deserialize(v.value)
	if err != nil {
		return timedValue[V]{}, false, err
	}
	return timedValue[V]{ts: v.ts, value: val}, true, nil
}

// latest returns k's latest value with its timestamp (found false when
// there is none or it is a deletion).
func (s *versionedStore[K, V]) latest(k K) (timedValue[V], bool, error) {
	kb, err := s.ks.Serialize(k)
	if err != nil {
		return timedValue[V]{}, false, err
	}
	vs, err := s.versions(kb)
	if err != nil || len(vs) == 0 {
		return timedValue[V]{}, false, err
	}
	return s.decode(vs[len(vs)-1])
}

// getAsOf returns the value k had at ts (Kafka Streams'
// VersionedKeyValueStore.get(key, asOfTimestamp)): the version with the
// largest timestamp not after ts, unless it is a deletion. As of a time
// before the cutoff only the latest version is seen, when it is not newer
// than ts.
func (s *versionedStore[K, V]) getAsOf(k K, ts int64) (timedValue[V], bool, error) {
	if err := s.load(); err != nil {
		return timedValue[V]{}, false, err
	}
	kb, err := s.ks.Serialize(k)
	if err != nil {
		return timedValue[V]{}, false, err
	}
	vs, err := s.versions(kb)
	if err != nil || len(vs) == 0 {
		return timedValue[V]{}, false, err
	}
	if c, ok := s.cutoff(); ok && ts < c {
		if last := vs[len(vs)-1]; last.ts <= ts {
			return s.decode(last)
		}
		return timedValue[V]{}, false, nil
	}
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].ts <= ts {
			return s.decode(vs[i])
		}
	}
	return timedValue[V]{}, false, nil
}

func (s *versionedStore[K, V]) Name() string { return s.inner.Name() }

// Get returns the latest value of key (found false when it was deleted).
func (s *versionedStore[K, V]) Get(key K) (V, bool, error) {
	tv, found, err := s.latest(key)
	return tv.value, found, err
}

// Range iterates the keys from..to (both inclusive, in the order of their
// serialized bytes) that have a latest value, with that value.
func (s *versionedStore[K, V]) Range(from, to K) (KeyValueIterator[K, V], error) {
	fb, err := s.ks.Serialize(from)
	if err != nil {
		return nil, err
	}
	tb, err := s.ks.Serialize(to)
	if err != nil {
		return nil, err
	}
	return s.iter(versionPrefix(fb), prefixEnd(versionPrefix(tb)))
}

// All iterates every key that has a latest value, with that value.
func (s *versionedStore[K, V]) All() (KeyValueIterator[K, V], error) { return s.iter(nil, nil) }

func (s *versionedStore[K, V]) iter(from, to []byte) (KeyValueIterator[K, V], error) {
	if s.inner.core.closed.Load() {
		return nil, ErrStoreClosed
	}
	it, err := s.inner.core.backend.Range(from, to)
	if err != nil {
		return nil, err
	}
	return &versionedIter[K, V]{it: it, s: s}, nil
}

// ApproximateNumEntries estimates the number of versions stored (not of
// keys).
func (s *versionedStore[K, V]) ApproximateNumEntries() int64 {
	if s.inner.core.closed.Load() {
		return 0
	}
	return s.inner.core.backend.ApproximateLen()
}

// versionedIter walks a versioned store's entries, one key's versions
// after another, and yields each key's latest version unless it is a
// deletion.
type versionedIter[K, V any] struct {
	it   kv.Iterator
	s    *versionedStore[K, V]
	cur  version // the last version seen of the key being read
	pre  []byte  // its prefix
	has  bool
	end  bool
	k    K
	v    V
	err  error
	done bool
}

func (i *versionedIter[K, V]) Next() bool {
	for i.err == nil && !i.done {
		if i.end {
			i.done = true
			if i.has && !i.cur.tomb {
				return i.emit(i.pre, i.cur)
			}
			return false
		}
		if !i.it.Next() {
			if i.err = i.it.Err(); i.err != nil {
				return false
			}
			i.end = true
			continue
		}
		if len(i.it.Key()) == 0 {
			continue // the stream time
		}
		v, err := decodeVersion(bytes.Clone(i.it.Key()), i.it.Value())
		if err != nil {
			i.err = err
			return false
		}
		v.value = bytes.Clone(v.value)
		p := v.key[:len(v.key)-8]
		if i.has && !bytes.Equal(p, i.pre) {
			prevPre, prev := i.pre, i.cur
			i.pre, i.cur = p, v
			if !prev.tomb {
				return i.emit(prevPre, prev)
			}
			continue
		}
		i.pre, i.cur, i.has = p, v, true
	}
	return false
}

func (i *versionedIter[K, V]) emit(prefix []byte, v version) bool {
	kb, err := unescapeKey(prefix)
	if err != nil {
		i.err = err
		return false
	}
	if i.k, i.err = i.s.ks.Deserialize(kb); i.err != nil {
		return false
	}
	i.v, i.err = i.s.vs.Deserialize(v.value)
	return i.err == nil
}

func (i *versionedIter[K, V]) Key() K       { return i.k }
func (i *versionedIter[K, V]) Value() V     { return i.v }
func (i *versionedIter[K, V]) Err() error   { return i.err }
func (i *versionedIter[K, V]) Close() error { return i.it.Close() }

// graceBuffer holds the stream records of a stream–table join with a
// grace period (Kafka Streams' RocksDBTimeOrderedKeyValueBuffer under
// KStreamKTableJoinProcessor). Its store's entries are keyed by the
// record's timestamp (8 bytes, big-endian, sign bit flipped), serialized
// key, then where it came from — the input record's offset (8 bytes), a
// hash of its topic (4) and a count of the records buffered while
// processing that input record (4) — so they iterate in the order they
// are joined, and a redelivered input record finds its entries again;
// the empty key holds the buffer's stream time (8 bytes).
type graceBuffer[K, V any] struct {
	store string
	grace int64 // ms
	ks    Serde[K]
	vs    Serde[V]
	buf   KeyValueStore[[]byte, []byte]
	// observed is the largest timestamp of a buffered record (noTime:
	// none yet), the stream time of the buffer, as in Kafka Streams (not
	// the task's, which the table's records move too).
	observed int64
	// in is the input record whose buffered records n counts.
	in RecordMetadata
	n  uint32
}

// graceMetaKey is the key of the buffer's stream time.
var graceMetaKey = []byte{}

func (g *graceBuffer[K, V]) init(ctx storeCtx) error {
	var err error
	if g.buf, err = GetKeyValueStore[[]byte, []byte](ctx, g.store); err != nil {
		return err
	}
	g.observed = noTime
	raw, found, err := g.buf.Get(graceMetaKey)
	if err != nil {
		return err
	}
	if found {
		if len(raw) != 8 {
			return fmt.Errorf("stream: corrupt stream time in grace buffer %s", g.store)
		}
		g.observed = int64(binary.BigEndian.Uint64(raw))
	}
	return nil
}

// process buffers r, then joins (with join) every buffered record that
// the grace period no longer holds, oldest first. A record already older
// than the buffer's stream time minus the grace period is joined at once.
func (g *graceBuffer[K, V]) process(ctx interface {
	RecordMetadata() (RecordMetadata, bool)
}, r Record[K, V], join func(Record[K, V]) error) error {
	ts := r.Timestamp.UnixMilli()
	if g.observed != noTime && g.observed-g.grace > ts {
		return join(r)
	}
	g.observed = max(g.observed, ts)
	kb, err := g.ks.Serialize(r.Key)
	if err != nil {
		return err
	}
	vb, err := g.vs.Serialize(r.Value)
	if err != nil {
		return err
	}
	// Outside an input record (a punctuation upstream) the count goes on.
	if md, ok := ctx.RecordMetadata(); ok && md != g.in {
		g.in, g.n = md, 0
	}
	g.n++
	h := fnv.New32a()
	_, _ = h.Write([]byte(g.in.Topic))
	key := binary.BigEndian.AppendUint64(make([]byte, 0, 24+len(kb)), uint64(ts)^(1<<63))
	key = binary.BigEndian.AppendUint64(append(key, kb...), uint64(g.in.Offset))
	key = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(key, h.Sum32()), g.n)
	if err := g.buf.Put(key, encodeBuffered(vb, r.Headers)); err != nil {
		return err
	}
	if err := g.buf.Put(graceMetaKey, binary.BigEndian.AppendUint64(nil, uint64(g.observed))); err != nil {
		return err
	}
	return g.evict(join)
}

// evict joins and removes the buffered records with timestamps up to the
// buffer's stream time minus the grace period.
func (g *graceBuffer[K, V]) evict(join func(Record[K, V]) error) error {
	limit := g.observed - g.grace
	it, err := g.buf.All()
	if err != nil {
		return err
	}
	defer it.Close()
	for it.Next() {
		key := it.Key()
		if len(key) == 0 {
			continue // the stream time
		}
		if len(key) < 24 {
			return fmt.Errorf("stream: corrupt key of %d bytes in grace buffer %s", len(key), g.store)
		}
		ts := int64(binary.BigEndian.Uint64(key) ^ (1 << 63))
		if ts > limit {
			break
		}
		k, err := g.ks.Deserialize(key[8 : len(key)-16])
		if err != nil {
			return err
		}
		vb, headers, err := decodeBuffered(it.Value())
		if err != nil {
			return fmt.Errorf("stream: grace buffer %s: %w", g.store, err)
		}
		v, err := g.vs.Deserialize(vb)
		if err != nil {
			return err
		}
		if err := g.buf.Delete(bytes.Clone(key)); err != nil {
			return err
		}
		if err := join(Record[K, V]{Key: k, Value: v, Timestamp: time.UnixMilli(ts), Headers: headers}); err != nil {
			return err
		}
	}
	return it.Err()
}

// encodeBuffered writes a buffered record's value and headers: uvarint
// lengths, each plus one (zero: nil), before the value, the header count,
// and each header's key and value.
func encodeBuffered(v []byte, headers []Header) []byte {
	n := len(v) + 2*binary.MaxVarintLen64
	for _, h := range headers {
		n += len(h.Key) + len(h.Value) + 2*binary.MaxVarintLen64
	}
	out := make([]byte, 0, n)
	appendBytes := func(b []byte, isNil bool) {
		if isNil {
			out = binary.AppendUvarint(out, 0)
			return
		}
		out = binary.AppendUvarint(out, uint64(len(b))+1)
		out = append(out, b...)
	}
	appendBytes(v, v == nil)
	out = binary.AppendUvarint(out, uint64(len(headers)))
	for _, h := range headers {
		appendBytes([]byte(h.Key), false)
		appendBytes(h.Value, h.Value == nil)
	}
	return out
}

func decodeBuffered(b []byte) (v []byte, headers []Header, err error) {
	bad := fmt.Errorf("corrupt buffered record of %d bytes", len(b))
	take := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || (n > 0 && n-1 > uint64(len(b)-k)) {
			return nil, false
		}
		b = b[k:]
		if n == 0 {
			return nil, true
		}
		out := bytes.Clone(b[:n-1])
		if out == nil {
			out = []byte{}
		}
		b = b[n-1:]
		return out, true
	}
	v, ok := take()
	if !ok {
		return nil, nil, bad
	}
	nh, k := binary.Uvarint(b)
	if k <= 0 || nh > uint64(len(b)) {
		return nil, nil, bad
	}
	b = b[k:]
	for range nh {
		key, ok := take()
		if !ok {
			return nil, nil, bad
		}
		val, ok := take()
		if !ok {
			return nil, nil, bad
		}
		headers = append(headers, Header{Key: string(key), Value: val})
	}
	if len(b) != 0 {
		return nil, nil, bad
	}
	return v, headers, nil
}
