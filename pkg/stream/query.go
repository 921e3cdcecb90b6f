package stream

import (
	"bytes"
	"fmt"
	"sort"
)

// StoreHost is something that hosts store instances: an App or a LocalRunner
// (streamtest.Driver.StoreHost returns its runner).
type StoreHost interface {
	localStores(name string) (cores []*storeCore, partitions int32, err error)
}

// QueryStore returns a read-only view of the store named name across the
// partitions this instance hosts (an interactive query). Get on a key whose
// partition is hosted elsewhere returns ErrNotLocal; Range and All cover the
// local partitions only. To read a whole store from any process, use a View.
func QueryStore[K, V any](host StoreHost, name string, keySerde Serde[K]) ReadOnlyKeyValueStore[K, V] {
	return &queryStore[K, V]{host: host, name: name, ks: keySerde}
}

type queryStore[K, V any] struct {
	host StoreHost
	name string
	ks   Serde[K]
}

func (q *queryStore[K, V]) Name() string { return q.name }

func (q *queryStore[K, V]) typed(c *storeCore) (ReadOnlyKeyValueStore[K, V], error) {
	s, ok := c.typed.(ReadOnlyKeyValueStore[K, V])
	if !ok {
		return nil, fmt.Errorf("%w: %q is a %T, not a key-value store of the requested types", ErrStoreNotFound, q.name, c.typed)
	}
	return s, nil
}

func (q *queryStore[K, V]) Get(key K) (V, bool, error) {
	var zero V
	cores, n, err := q.host.localStores(q.name)
	if err != nil {
		return zero, false, err
	}
	kb, err := q.ks.Serialize(key)
	if err != nil {
		return zero, false, err
	}
	// The key is where the producer's partitioner put it: murmur2 for
	// repartitioned keys, but input topics may be written by other
	// partitioners, so every local partition is asked.
	p, local := partitionFor(kb, n), false
	for _, c := range cores {
		local = local || c.partition == p
		s, err := q.typed(c)
		if err != nil {
			return zero, false, err
		}
		v, found, err := s.Get(key)
		if err != nil || found {
			return v, found, err
		}
	}
	if !local {
		return zero, false, ErrNotLocal
	}
	return zero, false, nil
}

func (q *queryStore[K, V]) Range(from, to K) (KeyValueIterator[K, V], error) {
	return q.collect(func(s ReadOnlyKeyValueStore[K, V]) (KeyValueIterator[K, V], error) { return s.Range(from, to) })
}

func (q *queryStore[K, V]) All() (KeyValueIterator[K, V], error) {
	return q.collect(func(s ReadOnlyKeyValueStore[K, V]) (KeyValueIterator[K, V], error) { return s.All() })
}

func (q *queryStore[K, V]) ApproximateNumEntries() int64 {
	cores, _, err := q.host.localStores(q.name)
	if err != nil {
		return 0
	}
	var n int64
	for _, c := range cores {
		if !c.closed.Load() {
			n += c.backend.ApproximateLen()
		}
	}
	return n
}

// collect merges the local partitions into one sorted snapshot. Queries are
// for inspection, not bulk export, so a copy is simple and safe.
func (q *queryStore[K, V]) collect(open func(ReadOnlyKeyValueStore[K, V]) (KeyValueIterator[K, V], error)) (KeyValueIterator[K, V], error) {
	cores, _, err := q.host.localStores(q.name)
	if err != nil {
		return nil, err
	}
	type entry struct {
		kb []byte
		kv KeyValue[K, V]
	}
	var all []entry
	for _, c := range cores {
		s, err := q.typed(c)
		if err != nil {
			return nil, err
		}
		it, err := open(s)
		if err != nil {
			return nil, err
		}
		for it.Next() {
			kb, err := q.ks.Serialize(it.Key())
			if err != nil {
				it.Close()
				return nil, err
			}
			all = append(all, entry{kb: kb, kv: KeyValue[K, V]{Key: it.Key(), Value: it.Value()}})
		}
		err = it.Err()
		it.Close()
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(all, func(i, j int) bool { return bytes.Compare(all[i].kb, all[j].kb) < 0 })
	kvs := make([]KeyValue[K, V], len(all))
	for i, e := range all {
		kvs[i] = e.kv
	}
	return &sliceIter[K, V]{kvs: kvs, i: -1}, nil
}

type sliceIter[K, V any] struct {
	kvs []KeyValue[K, V]
	i   int
}

func (s *sliceIter[K, V]) Next() bool   { s.i++; return s.i < len(s.kvs) }
func (s *sliceIter[K, V]) Key() K       { return s.kvs[s.i].Key }
func (s *sliceIter[K, V]) Value() V     { return s.kvs[s.i].Value }
func (s *sliceIter[K, V]) Err() error   { return nil }
func (s *sliceIter[K, V]) Close() error { return nil }
