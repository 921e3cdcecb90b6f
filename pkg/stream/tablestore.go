package stream

import (
	"encoding/binary"
	"fmt"
	"time"
)

// timedValue is a table value with the timestamp of the update that produced
// it (Kafka Streams' ValueAndTimestamp).
type timedValue[V any] struct {
	ts    int64 // ms
	value V
}

// timedValueSerde stores a timed value as Kafka Streams' timestamped stores
// do: 8 big-endian bytes of timestamp, then the value's own encoding.
type timedValueSerde[V any] struct {
	s Serde[V]
	a SerdeAppender[V] // s, if it is one
}

// AppendSerialize implements SerdeAppender.
func (t timedValueSerde[V]) AppendSerialize(b []byte, v timedValue[V]) ([]byte, error) {
	b = binary.BigEndian.AppendUint64(b, uint64(v.ts))
	if t.a != nil {
		return t.a.AppendSerialize(b, v.value)
	}
	vb, err := t.s.Serialize(v.value)
	if err != nil {
		return nil, err
	}
	return append(b, vb...), nil
}

func (t timedValueSerde[V]) Serialize(v timedValue[V]) ([]byte, error) {
	b, err := t.s.Serialize(v.value)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 8, 8+len(b))
	binary.BigEndian.PutUint64(out, uint64(v.ts))
	return append(out, b...), nil
}

func (t timedValueSerde[V]) Deserialize(b []byte) (timedValue[V], error) {
	if len(b) < 8 {
		return timedValue[V]{}, &SerdeError{Format: "timestamped value", Err: fmt.Errorf("want at least 8 bytes, got %d", len(b))}
	}
	v, err := t.s.Deserialize(b[8:])
	return timedValue[V]{ts: int64(binary.BigEndian.Uint64(b)), value: v}, err
}

// tableStore is the store of a table: values with their timestamps. Queries
// (QueryStore[K, V]) see the values only; the table's processors also read
// and write the timestamps.
type tableStore[K, V any] struct {
	inner *kvStore[K, timedValue[V]]
}

// tableStoreBuilder describes the timestamped key-value store of a table.
func tableStoreBuilder[K, V any](name string, keySerde Serde[K], valueSerde Serde[V], opts ...StoreOpt) StoreBuilder {
	s := &storeSpec{name: name}
	for _, o := range opts {
		o.applyStore(s)
	}
	s.open = func(c *storeCore) StateStore {
		return &tableStore[K, V]{inner: newKVStore[K, timedValue[V]](c, keySerde, timedValueSerde[V]{valueSerde, appender(valueSerde)}, s.noDedup)}
	}
	return s
}

// getTableStore returns the table store named name from a processor context.
func getTableStore[K, V any](ctx interface {
	Store(string) (StateStore, error)
}, name string) (*tableStore[K, V], error) {
	st, err := ctx.Store(name)
	if err != nil {
		return nil, err
	}
	ts, ok := st.(*tableStore[K, V])
	if !ok {
		return nil, fmt.Errorf("%w: %q is a %T, not a table store of the requested types", ErrStoreNotFound, name, st)
	}
	return ts, nil
}

func (s *tableStore[K, V]) Name() string { return s.inner.Name() }

// Get returns the value of key without its timestamp.
func (s *tableStore[K, V]) Get(key K) (V, bool, error) {
	tv, found, err := s.inner.Get(key)
	return tv.value, found, err
}

// getTimed returns the value of key with its timestamp.
func (s *tableStore[K, V]) getTimed(key K) (timedValue[V], bool, error) {
	return s.inner.Get(key)
}

// put stores v with timestamp ts under key (skipped on a redelivered input
// already applied to key).
func (s *tableStore[K, V]) put(key K, v V, ts time.Time) error {
	return s.inner.Put(key, timedValue[V]{ts: ts.UnixMilli(), value: v})
}

func (s *tableStore[K, V]) delete(key K) error { return s.inner.Delete(key) }

func (s *tableStore[K, V]) Range(from, to K) (KeyValueIterator[K, V], error) {
	it, err := s.inner.Range(from, to)
	if err != nil {
		return nil, err
	}
	return untimedIter[K, V]{it}, nil
}

func (s *tableStore[K, V]) All() (KeyValueIterator[K, V], error) {
	it, err := s.inner.All()
	if err != nil {
		return nil, err
	}
	return untimedIter[K, V]{it}, nil
}

func (s *tableStore[K, V]) ApproximateNumEntries() int64 { return s.inner.ApproximateNumEntries() }

type untimedIter[K, V any] struct {
	KeyValueIterator[K, timedValue[V]]
}

func (i untimedIter[K, V]) Value() V { return i.KeyValueIterator.Value().value }
