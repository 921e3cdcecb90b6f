package window

import (
	"cmp"
	"errors"
	"math"
	"slices"

	"github.com/emostream/emostream/pkg/stream"
)

// AggregateSessions aggregates each key's records per session (see
// SessionWindows). When a record merges sessions, merger combines their
// aggregates before the record is added. With OnWindowUpdate the merged
// session is forwarded; the sessions it replaced are not retracted (a session
// result supersedes every earlier result of the same key that it overlaps).
// Use AggregateSessionsWithTombstones to receive the retractions. A session
// result's timestamp is the session's end, as in Kafka Streams.
func AggregateSessions[K, V, A any](g *stream.GroupedStream[K, V], w SessionWindows, initializer func() A, aggregator func(k K, v V, agg A) A, merger func(k K, a, b A) A, aggSerde stream.Serde[A], opts ...Opt) *stream.Stream[Windowed[K], A] {
	return aggregate(g, w, initializer, aggregator, merger, aggSerde, identity[A], false, nil, opts...)
}

// AggregateSessionsWithTombstones is AggregateSessions with Kafka Streams'
// retractions: with OnWindowUpdate, when a record merges sessions, or lands
// inside one, a nil value (a tombstone) is forwarded for each session the
// merge removes, timestamped with that session's end, before the merged
// session. Written with TombstoneSerde, the nil values become Kafka
// tombstones exactly where Kafka Streams writes them, so a compacted topic or
// a table of the results keeps only live sessions. With the emit-final
// strategies nothing is retracted and no value is nil.
func AggregateSessionsWithTombstones[K, V, A any](g *stream.GroupedStream[K, V], w SessionWindows, initializer func() A, aggregator func(k K, v V, agg A) A, merger func(k K, a, b A) A, aggSerde stream.Serde[A], opts ...Opt) *stream.Stream[Windowed[K], *A] {
	return aggregate(g, w, initializer, aggregator, merger, aggSerde, func(a A) *A { return &a }, true, nil, opts...)
}

// CountSessions counts each key's records per session.
func CountSessions[K, V any](g *stream.GroupedStream[K, V], w SessionWindows, opts ...Opt) *stream.Stream[Windowed[K], int64] {
	return AggregateSessions(g, w, zeroCount, addOne[K, V], addCounts[K], stream.Int64(), opts...)
}

// CountSessionsWithTombstones counts each key's records per session, with
// the retractions of AggregateSessionsWithTombstones.
func CountSessionsWithTombstones[K, V any](g *stream.GroupedStream[K, V], w SessionWindows, opts ...Opt) *stream.Stream[Windowed[K], *int64] {
	return AggregateSessionsWithTombstones(g, w, zeroCount, addOne[K, V], addCounts[K], stream.Int64(), opts...)
}

func zeroCount() int64                         { return 0 }
func addOne[K, V any](_ K, _ V, n int64) int64 { return n + 1 }
func addCounts[K any](_ K, a, b int64) int64   { return a + b }

// TombstoneSerde writes a nil value as a Kafka null (a tombstone) and any
// other value with s; reading a null gives nil. It is
// [stream.TombstoneSerde].
func TombstoneSerde[A any](s stream.Serde[A]) stream.Serde[*A] { return stream.TombstoneSerde(s) }

type session[A any] struct {
	start, end int64
	value      timed[A]
}

// overlapping returns the key's sessions that a record at ts joins: those
// ending at or after ts-gap and starting at or before ts+gap, ordered by end,
// then start. Like Kafka Streams' session store with its default retention
// (gap + grace), it does not return sessions that ended at or before stream
// time - gap - grace as of the previous record: closed sessions are final.
func (p *aggProcessor[K, V, A, O]) overlapping(kb []byte, ts int64) ([]session[A], error) {
	gap := p.w.(SessionWindows).gap.Milliseconds()
	var out []session[A]
	err := p.scanKey(kb, math.MinInt64, ts+gap, func(wk []byte, start, end int64, v timed[A]) error {
		if end >= ts-gap && end > p.closedTo+1 {
			out = append(out, session[A]{start, end, v})
		}
		return nil
	})
	slices.SortFunc(out, func(a, b session[A]) int {
		return cmp.Or(cmp.Compare(a.end, b.end), cmp.Compare(a.start, b.start))
	})
	return out, err
}

// scanKey calls fn for each of the key's stored windows with start in
// [from, to], in start order.
func (p *aggProcessor[K, V, A, O]) scanKey(kb []byte, from, to int64, fn func(wk []byte, start, end int64, v timed[A]) error) error {
	it, err := p.main.Range(encodeWindowKey(kb, from, math.MinInt64), encodeWindowKey(kb, to, math.MaxInt64))
	if err != nil {
		return err
	}
	defer it.Close()
	for it.Next() {
		_, start, end, err := decodeWindowKey(it.Key())
		if err != nil {
			return err
		}
		if err := fn(it.Key(), start, end, it.Value()); err != nil {
			return err
		}
	}
	return it.Err()
}

// processSession follows Kafka Streams' KStreamSessionWindowAggregate: merge
// the sessions the record touches into one, drop the record if that merged
// session is already closed (late), else replace them with it.
func (p *aggProcessor[K, V, A, O]) processSession(ctx stream.ProcessorContext[Windowed[K], O], rec stream.Record[K, V], kb []byte, ts, bound int64) error {
	found, err := p.overlapping(kb, ts)
	if err != nil {
		return err
	}
	start, end := ts, ts
	for _, s := range found {
		start, end = min(start, s.start), max(end, s.end)
	}
	if end <= bound {
		if err := p.settle(ctx, end, bound); err != nil {
			return err
		}
	}
	late := end <= bound
	// One dedup gate per record and key, whether late or not, so a replay
	// makes the same sequence of writes.
	_, applied, err := p.keys.Update(kb, func(n int64, _ bool) (int64, error) {
		if late {
			return 0, errLate
		}
		return n + 1, nil
	})
	switch {
	case late && errors.Is(err, errLate):
		return p.reject(ctx, "late")
	case err != nil:
		return err
	case !applied:
		// Redelivered: the sessions already include the record. Re-send the
		// session holding it so downstream sees the current value.
		for _, s := range found {
			if s.start <= ts && ts <= s.end && p.o.emit == OnWindowUpdate {
				p.forward(ctx, rec.Key, s.start, s.end, s.value)
			}
		}
		return nil
	}
	agg := p.fresh(end)
	for _, s := range found {
		if agg.empty {
			agg = s.value
		} else {
			agg.value = p.merge(rec.Key, agg.value, s.value.value)
		}
	}
	if start != ts || end != ts {
		// Kafka Streams removes every merged session, and retracts it,
		// unless the merged session is the record's own [ts, ts] (which the
		// put below overwrites).
		for _, s := range found {
			if err := p.main.Delete(encodeWindowKey(kb, s.start, s.end)); err != nil {
				return err
			}
			if err := p.unindex(indexKey(kb, s.start, s.end)); err != nil {
				return err
			}
			if err := p.retract(ctx, rec.Key, s); err != nil {
				return err
			}
		}
	}
	v := timed[A]{ts: end, value: p.add(rec.Key, rec.Value, agg)}
	if err := p.main.Put(encodeWindowKey(kb, start, end), v); err != nil {
		return err
	}
	if err := p.markOpen(kb, start, end); err != nil {
		return err
	}
	return p.updated(ctx, rec.Key, kb, start, end, v)
}

// retract forwards what Kafka Streams forwards for a session a merge
// removed: a tombstone with OnWindowUpdate (when asked for), which
// UntilWindowCloses' suppression buffer receives and drops.
func (p *aggProcessor[K, V, A, O]) retract(ctx stream.ProcessorContext[Windowed[K], O], k K, s session[A]) error {
	switch p.o.emit {
	case OnWindowUpdate:
		if p.tombstones {
			var tomb O
			p.forwardValue(ctx, k, s.start, s.end, tomb, s.end)
		}
	case UntilWindowCloses:
		return p.forwardPoint(ctx)
	}
	return nil
}
