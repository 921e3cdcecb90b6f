package window

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/emostream/emostream/pkg/stream"
)

// metaKey holds the task's close watermark in the index store; it sorts
// before every index key (those are at least 16 bytes).
var metaKey = []byte{0}

const (
	windowOpen   int64 = 0
	windowClosed int64 = 1
)

// Aggregate folds the records of each key and window into a value:
// initializer starts a window, aggregator adds a record. w is TimeWindows or
// SlidingWindows (session windows need AggregateSessions). The result stream is
// keyed by Windowed[K]; what it carries depends on the emit strategy. A record
// whose windows are all closed (stream time, or the wall clock with
// WallClockClose, passed end + grace) is late: it is not aggregated and goes
// to the late-records topic (or is dropped, if chosen).
func Aggregate[K, V, A any](g *stream.GroupedStream[K, V], w Windows, initializer func() A, aggregator func(k K, v V, agg A) A, aggSerde stream.Serde[A], opts ...Opt) *stream.Stream[Windowed[K], A] {
	if _, ok := w.(SessionWindows); ok {
		g.Stream().Builder().ReportError(fmt.Errorf("%w: session windows need a merger: use AggregateSessions", ErrInvalidWindows))
	}
	return aggregate(g, w, initializer, aggregator, nil, aggSerde, opts...)
}

func aggregate[K, V, A any](g *stream.GroupedStream[K, V], w Windows, initializer func() A, aggregator func(k K, v V, agg A) A, merger func(k K, a, b A) A, aggSerde stream.Serde[A], opts ...Opt) *stream.Stream[Windowed[K], A] {
	o := options{closeInterval: 100 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	src := g.Stream()
	b := src.Builder()
	if err := w.validate(); err != nil {
		b.ReportError(err)
	}
	if o.lateTopic == "" && !o.dropLate {
		b.ReportError(fmt.Errorf("%w: choose LateRecordsTo(topic) or DropLateRecords() for late records", ErrInvalidWindows))
	}
	if g.KeySerde() == nil || aggSerde == nil {
		b.ReportError(fmt.Errorf("%w: the grouping needs a key serde and the aggregation a value serde", ErrInvalidWindows))
	}
	if o.name == "" {
		o.name = b.NewName("KSTREAM-WINDOWED-AGGREGATE")
	}
	minRet := w.maxSize() + w.GracePeriod() + 5*time.Minute
	if o.retention < minRet {
		o.retention = minRet
	}
	wall := o.emit == OnWindowClose
	if o.wallClock != nil {
		wall = *o.wallClock
	}
	mainStore, indexStore, keysStore, timesStore := o.name+"-store", o.name+"-index", o.name+"-keys", o.name+"-times"
	_, session := w.(SessionWindows)
	_, sliding := w.(SlidingWindows)
	mainOpts := o.storeOpts
	stores := []string{mainStore, indexStore}
	if session || sliding {
		// Sessions move between store keys when they merge, and sliding
		// windows are created from their neighbours' aggregates, so
		// redelivery is recognised per record key, in a store of its own.
		mainOpts = append([]stream.StoreOpt{stream.WithoutDedup()}, o.storeOpts...)
		b.AddStore(stream.KeyValueStoreBuilder(keysStore, stream.Serde[[]byte](rawSerde{}), stream.Int64(), o.storeOpts...))
		stores = append(stores, keysStore)
	}
	if sliding {
		// The largest record timestamp of each sliding window.
		b.AddStore(stream.KeyValueStoreBuilder(timesStore, stream.Serde[[]byte](rawSerde{}), stream.Int64(), append([]stream.StoreOpt{stream.WithoutDedup()}, o.storeOpts...)...))
		stores = append(stores, timesStore)
	}
	b.AddStore(stream.KeyValueStoreBuilder(mainStore, stream.Serde[[]byte](rawSerde{}), aggSerde, mainOpts...))
	b.AddStore(stream.KeyValueStoreBuilder(indexStore, stream.Serde[[]byte](rawSerde{}), stream.Int64(), append([]stream.StoreOpt{stream.WithoutDedup()}, o.storeOpts...)...))
	ks := g.KeySerde()
	return stream.Process(src, o.name, func() stream.Processor[K, V, Windowed[K], A] {
		return &aggProcessor[K, V, A]{
			w: w, o: o, wall: wall, ks: ks, mainName: mainStore, indexName: indexStore, keysName: keysStore,
			timesName: timesStore, session: session, sliding: sliding, merge: merger,
			init: initializer, agg: aggregator, closedTo: math.MinInt64, persisted: math.MinInt64,
		}
	}, stores...)
}

// Count counts the records of each key and window.
func Count[K, V any](g *stream.GroupedStream[K, V], w Windows, opts ...Opt) *stream.Stream[Windowed[K], int64] {
	return Aggregate(g, w, func() int64 { return 0 }, func(_ K, _ V, n int64) int64 { return n + 1 }, stream.Int64(), opts...)
}

// Sum adds fn(value) over the records of each key and window.
func Sum[K, V any](g *stream.GroupedStream[K, V], w Windows, fn func(v V) int64, opts ...Opt) *stream.Stream[Windowed[K], int64] {
	return Aggregate(g, w, func() int64 { return 0 }, func(_ K, v V, sum int64) int64 { return sum + fn(v) }, stream.Int64(), opts...)
}

type aggProcessor[K, V, A any] struct {
	w         Windows
	o         options
	wall      bool
	ks        stream.Serde[K]
	mainName  string
	indexName string
	keysName  string
	timesName string
	session   bool
	sliding   bool
	init      func() A
	agg       func(K, V, A) A
	merge     func(K, A, A) A

	main  stream.KeyValueStore[[]byte, A]
	index stream.KeyValueStore[[]byte, int64]
	keys  stream.KeyValueStore[[]byte, int64]
	times stream.KeyValueStore[[]byte, int64]
	// closedTo is the close watermark: every window with end <= closedTo is
	// closed. persisted is the value last written to the index store.
	closedTo  int64
	persisted int64

	// Per-record scratch, reused so the hot path allocates less: the
	// windows of the record, its window key (stores copy keys they keep),
	// and the record and flag the aggregate callback works on.
	wins [][2]int64
	// nextDue is at most the smallest end of an open window when
	// nextDueKnown, so closeUpTo skips the index scan while the watermark
	// stays below it (most records do not cross a window end).
	nextDue      int64
	nextDueKnown bool
	wkBuf        []byte
	cur          stream.Record[K, V]
	created      bool
	aggFn        func(old A, found bool) (A, error)
}

// aggregate is the Update callback of Process for p.cur.
func (p *aggProcessor[K, V, A]) aggregate(old A, found bool) (A, error) {
	if !found {
		old, p.created = p.init(), true
	}
	return p.agg(p.cur.Key, p.cur.Value, old), nil
}

func (p *aggProcessor[K, V, A]) Init(ctx stream.ProcessorContext[Windowed[K], A]) error {
	var err error
	if p.main, err = stream.GetKeyValueStore[[]byte, A](ctx, p.mainName); err != nil {
		return err
	}
	if p.index, err = stream.GetKeyValueStore[[]byte, int64](ctx, p.indexName); err != nil {
		return err
	}
	if p.session || p.sliding {
		if p.keys, err = stream.GetKeyValueStore[[]byte, int64](ctx, p.keysName); err != nil {
			return err
		}
	}
	if p.sliding {
		if p.times, err = stream.GetKeyValueStore[[]byte, int64](ctx, p.timesName); err != nil {
			return err
		}
	}
	if wm, found, err := p.index.Get(metaKey); err != nil {
		return err
	} else if found {
		p.closedTo, p.persisted = wm, wm
	}
	if p.o.emit == OnWindowClose && !stream.ExactlyOnceEnabled(ctx) {
		// Results of windows closed before a restart may not have reached Kafka
		// (the task stopped before its outputs were acknowledged): emit the
		// retained closed windows again. Their values cannot have changed.
		// Under transactions a window's close and its result commit together,
		// so there is nothing to make up for (and read_committed readers
		// would see the result twice).
		if err := p.reemitClosed(ctx); err != nil {
			return err
		}
	}
	if p.wall {
		ctx.Schedule(p.o.closeInterval, stream.WallClockTime, func(now time.Time) error {
			return p.closeUpTo(ctx, p.boundary(ctx))
		})
	}
	return nil
}

// boundary is the close watermark implied by the clocks now.
func (p *aggProcessor[K, V, A]) boundary(ctx stream.ProcessorContext[Windowed[K], A]) int64 {
	b := p.closedTo
	if st := ctx.StreamTime(); !st.IsZero() {
		b = max(b, p.w.closeBound(st.UnixMilli()))
	}
	// The wall clock closes windows only once the task has caught up with its
	// input: records already in Kafka during a backlog (after a restart or a
	// rebalance) are judged by stream time, not declared late.
	if p.wall && stream.CaughtUp(ctx) {
		b = max(b, p.w.closeBound(ctx.WallClockTime().UnixMilli()))
	}
	return b
}

func (p *aggProcessor[K, V, A]) Process(ctx stream.ProcessorContext[Windowed[K], A], rec stream.Record[K, V]) error {
	kb, err := p.ks.Serialize(rec.Key)
	if err != nil {
		return err
	}
	ts := rec.Timestamp.UnixMilli()
	bound := p.boundary(ctx)
	if p.session {
		return p.processSession(ctx, rec, kb, ts, bound)
	}
	if p.sliding {
		return p.processSliding(ctx, rec, kb, ts, bound)
	}
	late, total := 0, 0
	p.wins = p.w.windowsFor(p.wins[:0], ts)
	if p.aggFn == nil {
		p.aggFn = p.aggregate
	}
	p.cur = rec
	defer func() { p.cur = stream.Record[K, V]{} }()
	for _, win := range p.wins {
		total++
		p.wkBuf = appendWindowKey(p.wkBuf[:0], kb, win[0], win[1])
		wk := p.wkBuf
		if win[1] <= bound {
			// Closed window. Update still runs (and refuses), so a record that
			// was applied before a crash is recognised and not reported late.
			_, _, err := p.main.Update(wk, func(A, bool) (A, error) { var z A; return z, errLate })
			if errors.Is(err, errLate) {
				late++
			} else if err != nil {
				return err
			}
			continue
		}
		p.created = false
		v, _, err := p.main.Update(wk, p.aggFn)
		if err != nil {
			return err
		}
		if p.created {
			if err := p.markOpen(kb, win[0], win[1]); err != nil {
				return err
			}
		}
		if p.o.emit == OnWindowUpdate {
			ctx.Forward(stream.Record[Windowed[K], A]{
				Key:   Windowed[K]{Key: rec.Key, Start: time.UnixMilli(win[0]).UTC(), End: time.UnixMilli(win[1]).UTC()},
				Value: v, Timestamp: rec.Timestamp,
			})
		}
	}
	if late > 0 && late == total {
		if err := p.reportLate(ctx); err != nil {
			return err
		}
	}
	return p.closeUpTo(ctx, bound)
}

func (p *aggProcessor[K, V, A]) reportLate(ctx stream.ProcessorContext[Windowed[K], A]) error {
	if p.o.lateTopic != "" {
		return stream.DeadLetter(ctx, p.o.lateTopic, "late")
	}
	stream.RecordDropped(ctx, "late")
	return nil
}

// markOpen records a new open window in the close-time index.
func (p *aggProcessor[K, V, A]) markOpen(kb []byte, start, end int64) error {
	if p.nextDueKnown && end < p.nextDue {
		p.nextDue = end
	}
	return p.index.Put(indexKey(kb, start, end), windowOpen)
}

// closeUpTo closes every open window with end <= bound, in (end, key) order,
// emitting final results when asked, then persists the watermark and purges
// expired windows.
func (p *aggProcessor[K, V, A]) closeUpTo(ctx stream.ProcessorContext[Windowed[K], A], bound int64) error {
	if bound <= p.closedTo {
		return nil
	}
	if !p.nextDueKnown || bound >= p.nextDue {
		from := timeBound(math.MinInt64)
		if p.closedTo != math.MinInt64 {
			from = timeBound(p.closedTo + 1)
		}
		due, err := p.scanIndex(from, timeBound(bound+1), windowOpen)
		if err != nil {
			return err
		}
		for _, ik := range due {
			if p.o.emit == OnWindowClose {
				if err := p.emitFinal(ctx, ik); err != nil {
					return err
				}
			}
			if err := p.index.Put(ik, windowClosed); err != nil {
				return err
			}
		}
		if p.nextDue, err = p.firstOpenEnd(bound); err != nil {
			return err
		}
		p.nextDueKnown = true
	}
	p.closedTo = bound
	// Late decisions change only when the watermark crosses a window end, and
	// ends are multiples of the advance: persist at most once per step.
	adv := p.w.advanceMs()
	if floorDiv(bound, adv) != floorDiv(p.persisted, adv) || p.persisted == math.MinInt64 {
		if err := p.index.Put(metaKey, bound); err != nil {
			return err
		}
		oldPersisted := p.persisted
		p.persisted = bound
		if err := p.purge(oldPersisted, bound); err != nil {
			return err
		}
	}
	return nil
}

// purge deletes windows whose end is older than the retention.
func (p *aggProcessor[K, V, A]) purge(prevBound, bound int64) error {
	ret := p.o.retention.Milliseconds()
	cutoff := bound - ret
	from := timeBound(math.MinInt64)
	if prevBound != math.MinInt64 {
		from = timeBound(prevBound - ret + 1)
	}
	expired, err := p.scanIndex(from, timeBound(cutoff+1), -1)
	if err != nil {
		return err
	}
	for _, ik := range expired {
		kb, start, end, err := decodeIndexKey(ik)
		if err != nil {
			return err
		}
		if err := p.main.Delete(encodeWindowKey(kb, start, end)); err != nil {
			return err
		}
		if p.sliding {
			if err := p.times.Delete(encodeWindowKey(kb, start, end)); err != nil {
				return err
			}
		}
		if err := p.index.Delete(ik); err != nil {
			return err
		}
	}
	return nil
}

// firstOpenEnd returns the smallest end of an open window ending after
// bound (math.MaxInt64 if there is none).
func (p *aggProcessor[K, V, A]) firstOpenEnd(bound int64) (int64, error) {
	it, err := p.index.Range(timeBound(bound+1), timeBound(math.MaxInt64))
	if err != nil {
		return 0, err
	}
	defer it.Close()
	for it.Next() {
		if len(it.Key()) < 16 || it.Value() != windowOpen {
			continue
		}
		_, _, end, err := decodeIndexKey(it.Key())
		if err != nil {
			return 0, err
		}
		return end, nil
	}
	return math.MaxInt64, it.Err()
}

// scanIndex returns the index keys in [from, to) with the given state (-1: any).
func (p *aggProcessor[K, V, A]) scanIndex(from, to []byte, state int64) ([][]byte, error) {
	if string(from) >= string(to) {
		return nil, nil
	}
	// Range is inclusive; to is an 8-byte time bound and index keys are longer,
	// so no key equals it.
	it, err := p.index.Range(from, to)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out [][]byte
	for it.Next() {
		if len(it.Key()) < 16 {
			continue
		}
		if state < 0 || it.Value() == state {
			out = append(out, it.Key())
		}
	}
	return out, it.Err()
}

func (p *aggProcessor[K, V, A]) emitFinal(ctx stream.ProcessorContext[Windowed[K], A], ik []byte) error {
	kb, start, end, err := decodeIndexKey(ik)
	if err != nil {
		return err
	}
	v, found, err := p.main.Get(encodeWindowKey(kb, start, end))
	if err != nil || !found {
		return err
	}
	k, err := p.ks.Deserialize(kb)
	if err != nil {
		return err
	}
	ctx.Forward(stream.Record[Windowed[K], A]{
		Key:   Windowed[K]{Key: k, Start: time.UnixMilli(start).UTC(), End: time.UnixMilli(end).UTC()},
		Value: v, Timestamp: time.UnixMilli(end).UTC(),
	})
	return nil
}

func (p *aggProcessor[K, V, A]) reemitClosed(ctx stream.ProcessorContext[Windowed[K], A]) error {
	closed, err := p.scanIndex(timeBound(math.MinInt64), timeBound(math.MaxInt64), windowClosed)
	if err != nil {
		return err
	}
	for _, ik := range closed {
		if err := p.emitFinal(ctx, ik); err != nil {
			return err
		}
	}
	return nil
}

func (p *aggProcessor[K, V, A]) Close() error { return nil }
