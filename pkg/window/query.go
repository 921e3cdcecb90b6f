package window

import (
	"fmt"
	"math"
	"time"

	"github.com/emostream/emostream/pkg/stream"
)

// ReadOnlyWindowStore answers interactive queries on a windowed aggregation's
// local state, like Kafka Streams' ReadOnlyWindowStore.
type ReadOnlyWindowStore[K, A any] struct {
	kv stream.ReadOnlyKeyValueStore[[]byte, timed[A]]
	ks stream.Serde[K]
}

// QueryWindowStore opens the state of the aggregation named name (see Named)
// on host — a *stream.App, or a streamtest driver's StoreHost — for queries
// from outside the processing loop. It sees the partitions this instance
// hosts, and windows not yet purged by retention.
func QueryWindowStore[K, A any](host stream.StoreHost, name string, keySerde stream.Serde[K]) *ReadOnlyWindowStore[K, A] {
	return &ReadOnlyWindowStore[K, A]{kv: stream.QueryStore[[]byte, timed[A]](host, name+"-store", rawSerde{}), ks: keySerde}
}

// Fetch returns key's windows that start in [from, to], oldest first.
func (s *ReadOnlyWindowStore[K, A]) Fetch(key K, from, to time.Time) ([]stream.KeyValue[Windowed[K], A], error) {
	kb, err := s.ks.Serialize(key)
	if err != nil {
		return nil, err
	}
	it, err := s.kv.Range(encodeWindowKey(kb, from.UnixMilli(), math.MinInt64), encodeWindowKey(kb, to.UnixMilli(), math.MaxInt64))
	if err != nil {
		return nil, err
	}
	return s.collect(it, math.MinInt64, math.MaxInt64)
}

// FetchAll returns every window that starts in [from, to], grouped by key
// (keys in the order of WindowedSerde: length-prefixed key bytes), each key's
// windows ordered by start.
func (s *ReadOnlyWindowStore[K, A]) FetchAll(from, to time.Time) ([]stream.KeyValue[Windowed[K], A], error) {
	it, err := s.kv.All()
	if err != nil {
		return nil, err
	}
	return s.collect(it, from.UnixMilli(), to.UnixMilli())
}

func (s *ReadOnlyWindowStore[K, A]) collect(it stream.KeyValueIterator[[]byte, timed[A]], from, to int64) ([]stream.KeyValue[Windowed[K], A], error) {
	defer it.Close()
	var out []stream.KeyValue[Windowed[K], A]
	for it.Next() {
		kb, start, end, err := decodeWindowKey(it.Key())
		if err != nil {
			return nil, err
		}
		if start < from || start > to {
			continue
		}
		k, err := s.ks.Deserialize(kb)
		if err != nil {
			return nil, err
		}
		out = append(out, stream.KeyValue[Windowed[K], A]{
			Key:   Windowed[K]{Key: k, Start: time.UnixMilli(start).UTC(), End: time.UnixMilli(end).UTC()},
			Value: it.Value().value,
		})
	}
	return out, it.Err()
}

// ServeWindowStore registers the windowed aggregation named name (see
// Named) with h, a stream.QueryHandler: GET /stores/{name}/keys/{key}/windows
// ?from=MS&to=MS answers the key's windows that start in [from, to]
// (default: all), and /stores/{name}/keys/{key} all of them, as
// {"start": MS, "end": MS, "value": A}, oldest first, from whichever
// instance hosts the key. Keys in URLs are parsed with parseKey.
func ServeWindowStore[K, A any](h *stream.QueryHandler, name string, keySerde stream.Serde[K], parseKey func(string) (K, error)) {
	h.Register(name, &windowQuerier[K, A]{name: name, ks: keySerde, parse: parseKey, s: QueryWindowStore[K, A](h.Host(), name, keySerde)})
}

type windowQuerier[K, A any] struct {
	name  string
	ks    stream.Serde[K]
	parse func(string) (K, error)
	s     *ReadOnlyWindowStore[K, A]
}

// windowJSON is a window in a query answer.
type windowJSON[A any] struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	Value A     `json:"value"`
}

func (q *windowQuerier[K, A]) Store() string { return q.name + "-store" }

func (q *windowQuerier[K, A]) Key(s string) ([]byte, error) {
	k, err := q.parse(s)
	if err != nil {
		return nil, err
	}
	return q.ks.Serialize(k)
}

func (q *windowQuerier[K, A]) Get(key string) (any, bool, error) {
	ws, err := q.Windows(key, time.UnixMilli(math.MinInt64/2), time.UnixMilli(math.MaxInt64/2))
	return ws, len(ws) > 0, err
}

func (q *windowQuerier[K, A]) Range(string, string) ([]stream.QueryEntry, error) {
	return nil, fmt.Errorf("%w: window store %s answers key queries only", stream.ErrBadQuery, q.name)
}

func (q *windowQuerier[K, A]) Windows(key string, from, to time.Time) ([]any, error) {
	k, err := q.parse(key)
	if err != nil {
		return nil, err
	}
	kvs, err := q.s.Fetch(k, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, windowJSON[A]{Start: kv.Key.Start.UnixMilli(), End: kv.Key.End.UnixMilli(), Value: kv.Value})
	}
	return out, nil
}
