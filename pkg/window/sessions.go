package window

import (
	"errors"
	"math"
	"time"

	"github.com/emostream/emostream/pkg/stream"
)

// AggregateSessions aggregates each key's records per session (see
// SessionWindows). When a record merges sessions, merger combines their
// aggregates before the record is added. With OnWindowUpdate the merged
// session is forwarded; the sessions it replaced are not (a session result
// supersedes every earlier result of the same key that it overlaps).
func AggregateSessions[K, V, A any](g *stream.GroupedStream[K, V], w SessionWindows, initializer func() A, aggregator func(k K, v V, agg A) A, merger func(k K, a, b A) A, aggSerde stream.Serde[A], opts ...Opt) *stream.Stream[Windowed[K], A] {
	return aggregate(g, w, initializer, aggregator, merger, aggSerde, opts...)
}

// CountSessions counts each key's records per session.
func CountSessions[K, V any](g *stream.GroupedStream[K, V], w SessionWindows, opts ...Opt) *stream.Stream[Windowed[K], int64] {
	return AggregateSessions(g, w, func() int64 { return 0 },
		func(_ K, _ V, n int64) int64 { return n + 1 },
		func(_ K, a, b int64) int64 { return a + b }, stream.Int64(), opts...)
}

type session[A any] struct {
	start, end int64
	value      A
}

// overlapping returns the key's open sessions that a record at ts joins:
// those ending at or after ts-gap and starting at or before ts+gap.
func (p *aggProcessor[K, V, A]) overlapping(kb []byte, ts int64) ([]session[A], error) {
	gap := p.w.(SessionWindows).gap.Milliseconds()
	var out []session[A]
	err := p.scanKey(kb, math.MinInt64, ts+gap, func(wk []byte, start, end int64, v A) error {
		// Closed sessions are final: Kafka Streams no longer returns them.
		if end >= ts-gap && end > p.closedTo {
			out = append(out, session[A]{start, end, v})
		}
		return nil
	})
	return out, err
}

// scanKey calls fn for each of the key's stored windows with start in
// [from, to], in start order.
func (p *aggProcessor[K, V, A]) scanKey(kb []byte, from, to int64, fn func(wk []byte, start, end int64, v A) error) error {
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

// processSession follows Kafka Streams' session aggregation: merge the
// sessions the record touches into one, drop the record if that merged
// session is already closed (late), else add it.
func (p *aggProcessor[K, V, A]) processSession(ctx stream.ProcessorContext[Windowed[K], A], rec stream.Record[K, V], kb []byte, ts, bound int64) error {
	found, err := p.overlapping(kb, ts)
	if err != nil {
		return err
	}
	start, end := ts, ts
	for _, s := range found {
		start, end = min(start, s.start), max(end, s.end)
	}
	late := end < bound
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
		return p.reportLate(ctx)
	case err != nil:
		return err
	case !applied:
		// Redelivered: the sessions already include the record. Re-send the
		// session holding it so downstream sees the current value.
		for _, s := range found {
			if s.start <= ts && ts <= s.end && p.o.emit == OnWindowUpdate {
				p.forward(ctx, rec.Key, s.start, s.end, s.value, rec.Timestamp)
			}
		}
		return p.closeUpTo(ctx, bound)
	}
	agg := p.init()
	for _, s := range found {
		agg = p.merge(rec.Key, agg, s.value)
		if err := p.main.Delete(encodeWindowKey(kb, s.start, s.end)); err != nil {
			return err
		}
		if err := p.index.Delete(indexKey(kb, s.start, s.end)); err != nil {
			return err
		}
	}
	agg = p.agg(rec.Key, rec.Value, agg)
	if err := p.main.Put(encodeWindowKey(kb, start, end), agg); err != nil {
		return err
	}
	if err := p.markOpen(kb, start, end); err != nil {
		return err
	}
	if p.o.emit == OnWindowUpdate {
		p.forward(ctx, rec.Key, start, end, agg, rec.Timestamp)
	}
	if end <= p.closedTo {
		// Accepted exactly at the close point (end == now - gap - grace):
		// closed as soon as it exists, as Kafka Streams' suppression does.
		ik := indexKey(kb, start, end)
		if p.o.emit == OnWindowClose {
			if err := p.emitFinal(ctx, ik); err != nil {
				return err
			}
		}
		if err := p.index.Put(ik, windowClosed); err != nil {
			return err
		}
	}
	return p.closeUpTo(ctx, bound)
}

func (p *aggProcessor[K, V, A]) forward(ctx stream.ProcessorContext[Windowed[K], A], k K, start, end int64, v A, ts time.Time) {
	ctx.Forward(stream.Record[Windowed[K], A]{
		Key:   Windowed[K]{Key: k, Start: time.UnixMilli(start).UTC(), End: time.UnixMilli(end).UTC()},
		Value: v, Timestamp: ts,
	})
}
