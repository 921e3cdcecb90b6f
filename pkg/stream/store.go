package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/emostream/emostream/pkg/stream/internal/kv"
)

// StateStore is the part every state store shares.
type StateStore interface {
	// Name is the store's name, unique in a topology.
	Name() string
}

// ReadOnlyKeyValueStore is the query side of a key-value store. Interactive
// queries from outside the processing loop see this interface only.
type ReadOnlyKeyValueStore[K, V any] interface {
	StateStore
	// Get returns the value of key; found is false when there is none.
	Get(key K) (v V, found bool, err error)
	// Range iterates the keys from..to, both inclusive, in the order of their
	// serialized bytes. The caller must Close the iterator.
	Range(from, to K) (KeyValueIterator[K, V], error)
	// All iterates every key in the order of the serialized bytes. The caller
	// must Close the iterator.
	All() (KeyValueIterator[K, V], error)
	// ApproximateNumEntries estimates the number of keys.
	ApproximateNumEntries() int64
}

// KeyValueStore is a task's read-write key-value store, backed by a compacted
// changelog topic.
//
// Writes are deduplicated against redelivery: each stored value remembers, per
// input origin, the position of the last input record that changed it, and a write
// made while processing an input record that was already applied is skipped.
// That is what keeps counts exact when Kafka redelivers input after a crash (see
// docs/design.md). The dedup is exact when a processor's sequence of writes for
// one input record does not depend on the state it reads; Update is the
// primitive that makes read-modify-write safe.
type KeyValueStore[K, V any] interface {
	ReadOnlyKeyValueStore[K, V]
	// Put stores v under key (skipped if the current input was already applied to key).
	Put(key K, v V) error
	// Delete removes key.
	Delete(key K) error
	// Update reads key, calls fn with the current value and stores its result.
	// When the current input record was already applied to key (a redelivery
	// after a crash), fn is not called and the stored value is returned with
	// applied false. Aggregations use Update.
	Update(key K, fn func(old V, found bool) (V, error)) (v V, applied bool, err error)
}

// KeyValueCreator is implemented by the key-value stores GetKeyValueStore
// returns. Create writes v under key as a new entry without reading key
// first: it is Update with found false, minus the lookup, for a processor
// that knows which keys its store holds (the window aggregations track their
// open windows, and a record's first window of a key is new). The lookup of
// a missing key is most of an update's cost on disk (Pebble searches its
// memtable and the files whose key ranges cover the key).
//
// The caller must know that key has no entry. Create replaces one that
// exists, and with redelivery dedup it also drops that entry's record of
// the input already applied to it, so a record redelivered after a crash
// would be applied twice.
type KeyValueCreator[K, V any] interface {
	// Create writes v under key, which must have no entry, without reading
	// key first.
	Create(key K, v V) error
}

// KeyValueIterator iterates a store's entries. Key and Value are valid until the
// next call to Next. The caller must call Close.
type KeyValueIterator[K, V any] interface {
	// Next moves to the next entry; false at the end or on an error.
	Next() bool
	// Key is the current entry's key.
	Key() K
	// Value is the current entry's value.
	Value() V
	// Err is the error that ended the iteration, if any.
	Err() error
	// Close releases the iterator.
	Close() error
}

// StoreOpt configures a state store.
type StoreOpt interface{ applyStore(*storeSpec) }

type storeOptFunc func(*storeSpec)

func (f storeOptFunc) applyStore(s *storeSpec) { f(s) }

// Persistent keeps the store on disk (pebble) under the application's state
// directory (see StateDir) instead of in memory. After a clean shutdown a
// restart only reads the changelog's tail; after a crash the local copy is
// discarded and rebuilt from the changelog.
func Persistent() StoreOpt { return storeOptFunc(func(s *storeSpec) { s.persistent = true }) }

// WithoutDedup turns off redelivery tracking for a store whose writes are
// idempotent (setting a flag, writing an index entry): values are stored
// without input positions, and writes do not advance the record's write
// sequence. Update then always applies.
func WithoutDedup() StoreOpt { return storeOptFunc(func(s *storeSpec) { s.noDedup = true }) }

// StoreBuilder describes a state store to add to a topology with
// Builder.AddStore or through Materialized.
type StoreBuilder interface {
	// Name is the store's name.
	Name() string
	spec() *storeSpec
}

type storeSpec struct {
	name       string
	persistent bool
	noDedup    bool
	// open builds the typed store over a core.
	open func(c *storeCore) StateStore
}

func (s *storeSpec) Name() string     { return s.name }
func (s *storeSpec) spec() *storeSpec { return s }

// KeyValueStoreBuilder describes a key-value store named name.
func KeyValueStoreBuilder[K, V any](name string, keySerde Serde[K], valueSerde Serde[V], opts ...StoreOpt) StoreBuilder {
	s := &storeSpec{name: name}
	for _, o := range opts {
		o.applyStore(s)
	}
	s.open = func(c *storeCore) StateStore {
		return newKVStore(c, keySerde, valueSerde, s.noDedup)
	}
	return s
}

// GetKeyValueStore returns the typed key-value store named name from a
// processor context (or anything else that hands out stores).
func GetKeyValueStore[K, V any](p interface {
	Store(string) (StateStore, error)
}, name string) (KeyValueStore[K, V], error) {
	st, err := p.Store(name)
	if err != nil {
		return nil, err
	}
	kvs, ok := st.(KeyValueStore[K, V])
	if !ok {
		return nil, fmt.Errorf("%w: %q is a %T, not a KeyValueStore of the requested types", ErrStoreNotFound, name, st)
	}
	return kvs, nil
}

// storeCore is the untyped part of one store instance of one task.
type storeCore struct {
	name      string
	changelog string
	partition int32
	backend   kv.Store
	task      *task
	closed    atomic.Bool
	typed     StateStore
	// restoredTo is the next changelog offset not yet reflected in backend.
	restoredTo int64
	// lastAcked is the highest changelog offset Kafka acknowledged for this
	// store's own writes (-1 before the first).
	lastAcked atomic.Int64
	// dirty holds the changelog writes not sent yet (the record cache): the
	// latest value per key, nil for a deletion. Several writes of one key
	// between two commits become one changelog record.
	//
	// A map key is the written key's own bytes (unsafe.String): keys
	// reach the record cache owned and never modified (writeKV), so the
	// map keeps no copy and, at the flush, hands the same bytes to the
	// changelog record.
	dirty      map[string][]byte
	dirtyBytes int64
	// dirtyGen counts the times dirty was emptied (see kvStore.Update).
	dirtyGen uint64
	// inflight counts this store's changelog records sent to Kafka and not
	// acknowledged yet (App only; a LocalRunner has no changelog). Added to
	// and waited on under the task's lock.
	inflight sync.WaitGroup
}

// cacheEntryOverhead approximates a dirty entry's bookkeeping beyond its key
// and value bytes (map slot, string and slice headers).
const cacheEntryOverhead = 64

// recordCache is the budget of changelog writes an App holds back between
// commits, shared by all its stores (Kafka Streams' statestore.cache.max.bytes).
type recordCache struct {
	max  int64
	used atomic.Int64
}

func (c *storeCore) acked(off int64) {
	for {
		cur := c.lastAcked.Load()
		if off <= cur || c.lastAcked.CompareAndSwap(cur, off) {
			return
		}
	}
}

// write writes value under key (nil: deletes key) and sends it to the
// changelog now or at the next flush. The store keeps value; key is copied.
func (c *storeCore) write(key, value []byte) error {
	if value == nil {
		return c.writeKV(bytes.Clone(key), nil)
	}
	kv := make([]byte, len(key)+len(value))
	copy(kv, key)
	copy(kv[len(key):], value)
	return c.writeKV(kv[:len(key)], kv[len(key):])
}

// writeKV is write for a key the store may keep, never modified: the
// backend and the record cache share it, and value when it follows key in
// one array (see kv.Store.PutOwned).
func (c *storeCore) writeKV(key, value []byte) error {
	return c.writeKVAfter(key, value, nil, false)
}

// writeKVAfter is writeKV for a caller that read key from the record cache
// (pending) just before: held says the cache holds key, and prev is its value
// there. It saves looking the key up again.
func (c *storeCore) writeKVAfter(key, value, prev []byte, held bool) error {
	if c.closed.Load() {
		return ErrStoreClosed
	}
	var err error
	if value == nil {
		err = c.backend.Delete(key)
	} else {
		err = c.backend.PutOwned(key, value)
	}
	if err != nil {
		return err
	}
	rc := c.task.env.recordCache()
	if rc == nil {
		c.task.sendChangelog(c, key, value)
		return nil
	}
	if c.dirty == nil {
		c.dirty = map[string][]byte{}
	}
	delta := int64(len(value))
	if !held {
		prev, held = c.dirty[string(key)]
	}
	if held {
		delta -= int64(len(prev))
	} else {
		delta += int64(len(key)) + cacheEntryOverhead
	}
	c.dirty[unsafe.String(unsafe.SliceData(key), len(key))] = value
	c.dirtyBytes += delta
	if rc.used.Add(delta) > rc.max {
		// The whole task, in order (see task.flushStores), not this store
		// alone: a later-declared store never gets ahead of an earlier one.
		c.task.flushStores()
	}
	return nil
}

// pending returns what the record cache holds for key: its value (nil for a
// deletion), whether that is a value, and whether the cache holds the key at
// all. A held value is the backend's own (writeKV gives both the same bytes),
// so a caller may read it instead of the backend's. Only the task's
// goroutine, holding the task's lock, may call it: the cache is not
// safe for interactive queries' goroutines.
func (c *storeCore) pending(key []byte) (value []byte, found, ok bool) {
	if len(c.dirty) == 0 {
		return nil, false, false
	}
	value, ok = c.dirty[string(key)]
	return value, value != nil, ok
}

// flush sends the store's held-back changelog writes. The runtime calls it
// before it commits (so offsets never cover unsent state) and when the
// record cache is full. The caller holds the task's lock.
func (c *storeCore) flush() {
	if len(c.dirty) == 0 {
		return
	}
	for k, v := range c.dirty {
		key := []byte{} // an empty key stays a key, not a null one
		if k != "" {
			key = unsafe.Slice(unsafe.StringData(k), len(k))
		}
		c.task.sendChangelog(c, key, v)
	}
	c.dropDirty()
}

// dropDirty empties the store's part of the record cache (sent or given up)
// and returns its bytes to the App's budget.
func (c *storeCore) dropDirty() {
	if rc := c.task.env.recordCache(); rc != nil {
		rc.used.Add(-c.dirtyBytes)
	}
	clear(c.dirty)
	c.dirtyGen++
	c.dirtyBytes = 0
}

type kvStore[K, V any] struct {
	core    *storeCore
	ks      Serde[K]
	vs      Serde[V]
	noDedup bool
	// va is vs as a SerdeAppender (nil if it is not one), and valueHint
	// the length of the last value it encoded: the room write reserves
	// for the next one. Only the task writes.
	va        SerdeAppender[V]
	valueHint int
}

// newKVStore returns the typed store over c.
func newKVStore[K, V any](c *storeCore, ks Serde[K], vs Serde[V], noDedup bool) *kvStore[K, V] {
	return &kvStore[K, V]{core: c, ks: ks, vs: vs, noDedup: noDedup, va: appender(vs)}
}

func (s *kvStore[K, V]) Name() string { return s.core.name }

// get returns the user value stored under kb, a slice of the stored bytes.
func (s *kvStore[K, V]) get(kb []byte) ([]byte, bool, error) {
	if s.core.closed.Load() {
		return nil, false, ErrStoreClosed
	}
	// The stored bytes themselves, not a copy: the envelope is only parsed
	// and the value only deserialized (Serde.Deserialize neither keeps nor
	// modifies its input), and a backend never modifies a value it handed
	// out (kv.Store.GetShared).
	raw, found, err := s.core.backend.GetShared(kb)
	if err != nil || !found {
		return nil, false, err
	}
	value, err := eachPosition(raw, func(uint64, int64, uint64) {})
	return value, err == nil, err
}

func (s *kvStore[K, V]) Get(key K) (V, bool, error) {
	var zero V
	kb, err := s.ks.Serialize(key)
	if err != nil {
		return zero, false, err
	}
	value, found, err := s.get(kb)
	if err != nil || !found {
		return zero, false, err
	}
	v, err := s.vs.Deserialize(value)
	return v, err == nil, err
}

func (s *kvStore[K, V]) Put(key K, v V) error {
	if !s.noDedup {
		_, _, err := s.Update(key, func(V, bool) (V, error) { return v, nil })
		return err
	}
	// Without dedup nothing of the stored value survives a put (its
	// envelope holds no positions), so there is nothing to read first.
	kb, err := s.ks.Serialize(key)
	if err != nil {
		return err
	}
	if s.core.closed.Load() {
		return ErrStoreClosed
	}
	return s.write(kb, nil, writePosition{}, v, false)
}

// write stores v under kb in the envelope raw (nil: a new one) with
// position p added.
func (s *kvStore[K, V]) write(kb, raw []byte, p writePosition, v V, held bool) error {
	if s.va != nil {
		// One allocation: key and envelope, with room for a value as long
		// as the last one, which the serde appends to.
		kv, err := appendEnvelope(kb, raw, p, s.valueHint)
		if err != nil {
			return err
		}
		head := len(kv)
		if kv, err = s.va.AppendSerialize(kv, v); err != nil {
			return err
		}
		s.valueHint = len(kv) - head
		if cap(kv) > len(kv) {
			// A shorter value than the hint: no spare capacity is kept.
			kv = append(make([]byte, 0, len(kv)), kv...)
		}
		return s.core.writeKVAfter(kv[:len(kb)], kv[len(kb):], raw, held)
	}
	vb, err := s.vs.Serialize(v)
	if err != nil {
		return err
	}
	kv, err := rewriteEnvelope(kb, raw, p, vb)
	if err != nil {
		return err
	}
	return s.core.writeKVAfter(kv[:len(kb)], kv[len(kb):], raw, held)
}

func (s *kvStore[K, V]) Update(key K, fn func(old V, found bool) (V, error)) (V, bool, error) {
	var zero V
	kb, err := s.ks.Serialize(key)
	if err != nil {
		return zero, false, err
	}
	if s.core.closed.Load() {
		return zero, false, ErrStoreClosed
	}
	// The stored envelope is read in place: it is only parsed, never kept
	// or modified, and the new one is written to a fresh buffer. A key
	// written since the last flush is read from the record cache, which
	// holds the same bytes as the backend, without a descent of the
	// backend's tree (a key updated by every few records, issue #14).
	raw, found, cached := s.core.pending(kb)
	gen := s.core.dirtyGen
	if !cached {
		if raw, found, err = s.core.backend.GetShared(kb); err != nil {
			return zero, false, err
		}
	}
	var pos writePosition
	if !s.noDedup {
		pos = s.core.task.nextWritePosition()
	}
	var old V
	if found {
		value, applied, err := scanEnvelope(raw, pos)
		if err != nil {
			return zero, false, err
		}
		if old, err = s.vs.Deserialize(value); err != nil {
			return zero, false, err
		}
		if applied {
			return old, false, nil
		}
	}
	nv, err := fn(old, found)
	if err != nil {
		return zero, false, err
	}
	if !found {
		raw = nil
	}
	// fn could have made the cache flush (by writing to another store):
	// then what pending said no longer holds.
	if err := s.write(kb, raw, pos, nv, cached && gen == s.core.dirtyGen); err != nil {
		return zero, false, err
	}
	return nv, true, nil
}

// Create implements KeyValueCreator: Update's write of a new entry, with the
// current input's position in its dedup envelope, without the lookup.
func (s *kvStore[K, V]) Create(key K, v V) error {
	kb, err := s.ks.Serialize(key)
	if err != nil {
		return err
	}
	if s.core.closed.Load() {
		return ErrStoreClosed
	}
	var pos writePosition
	if !s.noDedup {
		pos = s.core.task.nextWritePosition()
	}
	return s.write(kb, nil, pos, v, false)
}

func (s *kvStore[K, V]) Delete(key K) error {
	kb, err := s.ks.Serialize(key)
	if err != nil {
		return err
	}
	if !s.noDedup {
		s.core.task.nextWritePosition()
	}
	return s.core.write(kb, nil)
}

func (s *kvStore[K, V]) Range(from, to K) (KeyValueIterator[K, V], error) {
	fb, err := s.ks.Serialize(from)
	if err != nil {
		return nil, err
	}
	tb, err := s.ks.Serialize(to)
	if err != nil {
		return nil, err
	}
	// The backend's upper bound is exclusive; to+0x00 is the smallest key after to.
	return s.iter(fb, append(append([]byte(nil), tb...), 0))
}

func (s *kvStore[K, V]) All() (KeyValueIterator[K, V], error) { return s.iter(nil, nil) }

func (s *kvStore[K, V]) iter(from, to []byte) (KeyValueIterator[K, V], error) {
	if s.core.closed.Load() {
		return nil, ErrStoreClosed
	}
	it, err := s.core.backend.Range(from, to)
	if err != nil {
		return nil, err
	}
	return &kvIter[K, V]{it: it, s: s}, nil
}

func (s *kvStore[K, V]) ApproximateNumEntries() int64 {
	if s.core.closed.Load() {
		return 0
	}
	return s.core.backend.ApproximateLen()
}

type kvIter[K, V any] struct {
	it  kv.Iterator
	s   *kvStore[K, V]
	k   K
	v   V
	err error
}

func (i *kvIter[K, V]) Next() bool {
	if i.err != nil || !i.it.Next() {
		return false
	}
	if i.k, i.err = i.s.ks.Deserialize(i.it.Key()); i.err != nil {
		return false
	}
	// Only the user value is wanted: skip the positions without
	// collecting them.
	value, err := eachPosition(i.it.Value(), func(uint64, int64, uint64) {})
	if err != nil {
		i.err = err
		return false
	}
	i.v, i.err = i.s.vs.Deserialize(value)
	return i.err == nil
}

func (i *kvIter[K, V]) Key() K   { return i.k }
func (i *kvIter[K, V]) Value() V { return i.v }
func (i *kvIter[K, V]) Err() error {
	if i.err != nil {
		return i.err
	}
	return i.it.Err()
}
func (i *kvIter[K, V]) Close() error { return i.it.Close() }

// writePosition identifies the store write being made: the input origin (source
// topic-partition, plus the repartition topics the record went through), the
// origin offset, and a sub-position counting writes and forwards within that
// input record (16 bits per hop).
type writePosition struct {
	origin string // "" for a write without a position (a punctuation)
	id     uint64 // originID(origin), what envelopes store
	offset int64
	sub    uint64
}

// dedup reports whether the write comes from an input record (not from a
// punctuation), so it can be checked against redelivery.
func (p writePosition) dedup() bool { return p.origin != "" }

// storedPosition is a position as an envelope holds it: the origin by its id.
type storedPosition struct {
	id     uint64
	offset int64
	sub    uint64
}

// originID is the 64-bit FNV-1a hash of an origin. Envelopes store it instead
// of the origin's name, which is a topic name and partition, and for a
// repartitioned record a chain of them: 8 bytes instead of 10 to 100 per
// stored value and changelog record. Two origins are confused only if they
// write the same key and their hashes collide in all 64 bits.
func originID[T string | []byte](origin T) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(origin); i++ {
		h ^= uint64(origin[i])
		h *= 1099511628211
	}
	return h
}

// envelope is the stored form of a value: the positions last applied per origin,
// then the user's serialized value.
type envelope struct {
	positions []storedPosition
	value     []byte
}

const (
	// envelopeV1 envelopes name each position's origin (uvarint length and
	// bytes). Stores and changelogs written before version 2 hold them: they
	// are read, and rewritten as version 2 at their next write.
	envelopeV1 = 1
	// envelopeVersion is what is written: version byte, uvarint count, then
	// per position the origin's id (8 bytes, big-endian), uvarint offset and
	// uvarint sub; then the user's value.
	envelopeVersion = 2
)

var errBadEnvelope = errors.New("stream: corrupt stored value envelope")

func (e *envelope) applied(p writePosition) bool {
	for _, q := range e.positions {
		if q.id == p.id {
			return p.offset < q.offset || (p.offset == q.offset && p.sub <= q.sub)
		}
	}
	return false
}

func (e *envelope) set(p writePosition) {
	q := storedPosition{id: p.id, offset: p.offset, sub: p.sub}
	for i := range e.positions {
		if e.positions[i].id == p.id {
			e.positions[i] = q
			return
		}
	}
	e.positions = append(e.positions, q)
}

func (e envelope) encode() []byte {
	n := 2 + len(e.value)
	for range e.positions {
		n += 8 + 2*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = append(b, envelopeVersion)
	b = binary.AppendUvarint(b, uint64(len(e.positions)))
	for _, p := range e.positions {
		b = appendPosition(b, p.id, p.offset, p.sub)
	}
	return append(b, e.value...)
}

func decodeEnvelope(b []byte) (envelope, error) {
	var e envelope
	value, err := eachPosition(b, func(id uint64, offset int64, sub uint64) {
		e.positions = append(e.positions, storedPosition{id: id, offset: offset, sub: sub})
	})
	if err != nil {
		return envelope{}, err
	}
	e.value = value
	return e, nil
}

// eachPosition calls fn for every position stored in the envelope raw
// (either version) without allocating and returns the user value.
func eachPosition(raw []byte, fn func(id uint64, offset int64, sub uint64)) ([]byte, error) {
	if len(raw) < 2 || (raw[0] != envelopeVersion && raw[0] != envelopeV1) {
		return nil, errBadEnvelope
	}
	v1 := raw[0] == envelopeV1
	b := raw[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errBadEnvelope
	}
	b = b[k:]
	for range n {
		var id uint64
		if v1 {
			l, k := binary.Uvarint(b)
			if k <= 0 || l > uint64(len(b)-k) {
				return nil, errBadEnvelope
			}
			id = originID(b[k : k+int(l)])
			b = b[k+int(l):]
		} else {
			if len(b) < 8 {
				return nil, errBadEnvelope
			}
			id = binary.BigEndian.Uint64(b)
			b = b[8:]
		}
		off, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, errBadEnvelope
		}
		b = b[k:]
		sub, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, errBadEnvelope
		}
		b = b[k:]
		fn(id, int64(off), sub)
	}
	return b, nil
}

// scanEnvelope returns the user value of raw and whether the write at p was
// already applied to it (always false for a write without a position).
func scanEnvelope(raw []byte, p writePosition) (value []byte, applied bool, err error) {
	seen := false
	value, err = eachPosition(raw, func(id uint64, off int64, sub uint64) {
		if !seen && p.dedup() && id == p.id {
			seen = true
			applied = p.offset < off || (p.offset == off && p.sub <= sub)
		}
	})
	return value, applied && err == nil, err
}

// rewriteEnvelope encodes value with the positions of raw (nil: none), p
// replacing the one of its origin (or added; p without a position changes
// nothing), into a new buffer that starts with prefix (the store key, so
// key and value are one allocation) and has no spare capacity. It always
// writes the current version.
func rewriteEnvelope(prefix, raw []byte, p writePosition, value []byte) ([]byte, error) {
	b, err := appendEnvelope(prefix, raw, p, len(value))
	if err != nil {
		return nil, err
	}
	return append(b, value...), nil
}

// appendEnvelope is rewriteEnvelope without the value: the new buffer ends
// with the envelope's header and has room for valueLen more bytes.
func appendEnvelope(prefix, raw []byte, p writePosition, valueLen int) ([]byte, error) {
	if p.dedup() && onlyPositionOf(raw, p.id) {
		// The common case, a store fed by one input partition: the old
		// envelope holds one position, of p's origin, which p replaces.
		b := make([]byte, 0, len(prefix)+2+positionSize(p.offset, p.sub)+valueLen)
		b = append(b, prefix...)
		b = append(b, envelopeVersion, 1) // one position (uvarint 1)
		return appendPosition(b, p.id, p.offset, p.sub), nil
	}
	var n uint64
	size := len(prefix) + 1 + valueLen
	if raw != nil {
		if _, err := eachPosition(raw, func(id uint64, off int64, sub uint64) {
			if !p.dedup() || id != p.id {
				n++
				size += positionSize(off, sub)
			}
		}); err != nil {
			return nil, err
		}
	}
	if p.dedup() {
		n++
		size += positionSize(p.offset, p.sub)
	}
	size += uvarintSize(n)
	b := make([]byte, 0, size)
	b = append(b, prefix...)
	b = append(b, envelopeVersion)
	b = binary.AppendUvarint(b, n)
	if raw != nil {
		_, _ = eachPosition(raw, func(id uint64, off int64, sub uint64) {
			if !p.dedup() || id != p.id {
				b = appendPosition(b, id, off, sub)
			}
		})
	}
	if p.dedup() {
		b = appendPosition(b, p.id, p.offset, p.sub)
	}
	return b, nil
}

// onlyPositionOf reports whether raw is a well-formed current-version
// envelope header holding exactly one position, of origin id (the value
// after it is not looked at).
func onlyPositionOf(raw []byte, id uint64) bool {
	if len(raw) < 12 || raw[0] != envelopeVersion || raw[1] != 1 || binary.BigEndian.Uint64(raw[2:]) != id {
		return false
	}
	_, k := binary.Uvarint(raw[10:])
	if k <= 0 {
		return false
	}
	_, k2 := binary.Uvarint(raw[10+k:])
	return k2 > 0
}

// positionSize is the encoded size of a position (appendPosition).
func positionSize(off int64, sub uint64) int {
	return 8 + uvarintSize(uint64(off)) + uvarintSize(sub)
}

// uvarintSize is the length of binary.AppendUvarint's encoding of x.
func uvarintSize(x uint64) int {
	return (bits.Len64(x|1) + 6) / 7
}

func appendPosition(b []byte, id uint64, off int64, sub uint64) []byte {
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.AppendUvarint(b, uint64(off))
	return binary.AppendUvarint(b, sub)
}
