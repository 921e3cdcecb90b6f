package window

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unsafe"

	"github.com/google/btree"

	"github.com/emostream/emostream/pkg/stream"
)

// metaKey holds the task's close watermark in the index store; it sorts
// before every index key (those are at least 16 bytes).
var metaKey = []byte{0}

// markKey is the index store key of the close mark of a commit epoch: the
// close watermark the task had reached when it last persisted one in that
// epoch (see closeMark). Ten bytes, so it is no index key either.
func markKey(epoch uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{0, 'm'}, epoch)
}

// isMarkKey reports whether k is a markKey.
func isMarkKey(k []byte) bool { return len(k) == 10 && k[0] == 0 && k[1] == 'm' }

// States of a window of the index store, for session and sliding windows
// (tumbling and hopping windows keep none: see aggProcessor.derived). A
// window that was emitted (or closed) carries the
// commit epoch (ProcessorContext.CommitEpoch) in which that happened, so a
// restarted task re-emits only what no commit covered; that state is kept in
// the index store (and its changelog). An open window has no entry there:
// it is in the processor's in-memory set of open windows, which Init derives
// from the window store (every window without an index entry is open). A
// restore so reads each window once, from the window store's changelog,
// instead of once more for its index entry, and a new window costs no index
// write.
const (
	// windowOpen: takes records, no final result emitted yet. Index stores
	// written before the open set existed hold open windows with this
	// state; they are read as open.
	windowOpen int64 = 0
	// A positive state is a closed window, closed (and, with an emit-final
	// strategy, emitted) in epoch state. A negative state is a window
	// UntilWindowCloses emitted in epoch -state that still takes records
	// (sessions and sliding windows, for one millisecond of stream time).
)

// reasonNegative is the dead-letter error and drop reason of a record with a
// negative timestamp.
const reasonNegative = "negative_timestamp"

// reasonValueMissing is the drop reason of a window result that could not
// be emitted because the window's value was missing from the store.
const reasonValueMissing = "window_value_missing"

// Aggregate folds the records of each key and window into a value:
// initializer starts a window, aggregator adds a record. w is TimeWindows or
// SlidingWindows (session windows need AggregateSessions). The result stream is
// keyed by Windowed[K]; what it carries depends on the emit strategy. Each
// result's timestamp is the largest timestamp of the records in its window,
// as in Kafka Streams. A record whose windows are all closed (stream time, or
// the wall clock with WallClockClose, passed end + grace) is late: it is not
// aggregated and goes to the late-records topic (or is dropped and counted,
// if chosen).
func Aggregate[K, V, A any](g *stream.GroupedStream[K, V], w Windows, initializer func() A, aggregator func(k K, v V, agg A) A, aggSerde stream.Serde[A], opts ...Opt) *stream.Stream[Windowed[K], A] {
	if _, ok := w.(SessionWindows); ok {
		g.Stream().Builder().ReportError(fmt.Errorf("%w: session windows need a merger: use AggregateSessions", ErrInvalidWindows))
	}
	return aggregate(g, w, initializer, aggregator, nil, aggSerde, identity[A], false, nil, opts...)
}

func identity[A any](a A) A { return a }

// Reduce combines the values of each key and window with reducer, the first
// value of a window being its start (Kafka Streams' windowed reduce). The
// grouping's value serde stores the windows' values. For session windows,
// reducer also combines the values of merged sessions.
func Reduce[K, V any](g *stream.GroupedStream[K, V], w Windows, reducer func(k K, agg, v V) V, opts ...Opt) *stream.Stream[Windowed[K], V] {
	zero := func() V { var z V; return z }
	add := func(k K, v V, agg V) V { return reducer(k, agg, v) }
	var merger func(K, V, V) V
	if _, ok := w.(SessionWindows); ok {
		merger = reducer
	}
	return aggregate(g, w, zero, add, merger, g.ValueSerde(), identity[V], false, func(_ K, v V) V { return v }, opts...)
}

// aggregate builds every windowed aggregation. first, when set (Reduce),
// gives a window's value from its first record instead of aggregating it
// into initializer's value.
func aggregate[K, V, A, O any](g *stream.GroupedStream[K, V], w Windows, initializer func() A, aggregator func(k K, v V, agg A) A, merger func(k K, a, b A) A, aggSerde stream.Serde[A], out func(A) O, tombstones bool, first func(k K, v V) A, opts ...Opt) *stream.Stream[Windowed[K], O] {
	o := options{closeInterval: 100 * time.Millisecond}
	for _, opt := range opts {
		opt.apply(&o)
	}
	src := g.Stream()
	b := src.Builder()
	if err := w.validate(); err != nil {
		b.ReportError(err)
	}
	if o.lateTopic == "" && !o.dropLate {
		b.ReportError(fmt.Errorf("%w: choose LateRecordsTo(topic) or DropLateRecords() for late records", ErrInvalidWindows))
	}
	if o.emit < OnWindowUpdate || o.emit > UntilWindowCloses {
		b.ReportError(fmt.Errorf("%w: unknown emit strategy %v", ErrInvalidWindows, o.emit))
	}
	if g.KeySerde() == nil || aggSerde == nil {
		b.ReportError(fmt.Errorf("%w: the grouping needs a key serde and the aggregation a value serde", ErrInvalidWindows))
	}
	if o.name == "" {
		o.name = b.NewName("KSTREAM-WINDOWED-AGGREGATE")
	}
	if minRet := w.minRetention(); o.retention < minRet {
		o.retention = minRet
	}
	wall := o.emit != OnWindowUpdate
	if o.wallClock != nil {
		wall = *o.wallClock
	}
	mainStore, indexStore, keysStore := o.name+"-store", o.name+"-index", o.name+"-keys"
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
	b.AddStore(stream.KeyValueStoreBuilder(mainStore, stream.Serde[[]byte](rawSerde{}), stream.Serde[timed[A]](newTimedSerde(aggSerde)), mainOpts...))
	b.AddStore(stream.KeyValueStoreBuilder(indexStore, stream.Serde[[]byte](rawSerde{}), stream.Int64(), append([]stream.StoreOpt{stream.WithoutDedup()}, o.storeOpts...)...))
	ks := g.KeySerde()
	ka, _ := ks.(stream.SerdeAppender[K])
	var lead int64
	if o.emit == UntilWindowCloses {
		lead = w.suppressLead()
	}
	return stream.Process(src, o.name, func() stream.Processor[K, V, Windowed[K], O] {
		return &aggProcessor[K, V, A, O]{
			w: w, o: o, wall: wall, ks: ks, ka: ka, mainName: mainStore, indexName: indexStore, keysName: keysStore,
			session: session, sliding: sliding, merge: merger, out: out, tombstones: tombstones && o.emit == OnWindowUpdate,
			final: o.emit != OnWindowUpdate, lead: lead, derived: !session && !sliding && !legacyIndexFormat,
			init: initializer, agg: aggregator, first: first, closedTo: math.MinInt64, persisted: math.MinInt64, durable: math.MinInt64,
			committedClose: math.MinInt64, purgedTo: math.MinInt64,
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

// aggProcessor runs every windowed aggregation. A is the stored aggregate, O
// what is forwarded (A itself, or *A when session tombstones are wanted).
type aggProcessor[K, V, A, O any] struct {
	w          Windows
	o          options
	wall       bool
	ks         stream.Serde[K]
	mainName   string
	indexName  string
	keysName   string
	session    bool
	sliding    bool
	final      bool  // an emit-final strategy
	lead       int64 // see Windows.suppressLead; 0 unless UntilWindowCloses
	tombstones bool  // forward a tombstone for each session a merge removes
	init       func() A
	agg        func(K, V, A) A
	merge      func(K, A, A) A
	first      func(K, V) A // Reduce: a window's value from its first record
	out        func(A) O

	main  stream.KeyValueStore[[]byte, timed[A]]
	index stream.KeyValueStore[[]byte, int64]
	keys  stream.KeyValueStore[[]byte, int64]
	// creator is main's Create, which writes a new window without looking
	// it up first (see isNew); nil if main does not offer it.
	creator stream.KeyValueCreator[[]byte, timed[A]]
	ikBuf   []byte // scratch index key for isNew
	kbBuf   []byte // scratch serialized key of a time window's record
	// ka is ks as a SerdeAppender (nil: it is none).
	ka stream.SerdeAppender[K]
	// newShare counts up (to newShareMax) for each window a record created
	// and down for each it found: isNew looks windows up in the open set only
	// while most records create one (many keys). With few keys, where nearly
	// every record updates a window, the store's lookup finds it anyway and
	// the open-set lookup would only add to it (16 keys: 5-10 % of the CPU).
	newShare int
	// derived: the windows are tumbling or hopping, and their state follows
	// from the watermarks alone, so the index store holds no entry per
	// window, only the close watermark (metaKey) and the close marks of the
	// epochs (markKey). A window of the store is open if its end is after
	// closedTo, else closed, and then emitted (with an emit-final strategy)
	// in the first epoch whose close mark reached its end: a restarted task
	// re-emits the closed windows above the last committed epoch's mark.
	// Closed windows wait for their purge in expiry. Kafka Streams' window
	// store keeps no per-window emission state either; this takes the
	// close entry and its tombstone off each window's changelog writes.
	// Session and sliding windows (their ends are not on a grid, and
	// UntilWindowCloses emits them while open) keep the index.
	derived bool
	expiry  expiryQueue
	// keptMark is the epoch of the close mark kept in the index store as the
	// last committed one (0: none); the marks of older epochs are deleted.
	keptMark uint64
	// legacy: the index store holds window entries written before derived
	// state (converted at the first Process or punctuation).
	legacy bool
	// open holds the index keys (see indexKey) of the open windows that
	// have no entry in the index store; a window is in one of the two.
	open *btree.BTreeG[string]
	// closedTo is the close watermark: every window with end <= closedTo is
	// closed. persisted is the value last written to the index store.
	// durable is a watermark known to be in the index's changelog, with
	// every store write made before it (restored, or written by
	// checkpoint): a replay after a crash closes at least that much.
	closedTo  int64
	persisted int64
	durable   int64
	// closeMarks are the close watermarks persisted in commit epochs not
	// known to be committed yet, oldest first; committedClose is the
	// largest one a commit covered. Input replayed after a crash was
	// processed after the last commit, so it only touches windows that
	// end after committedClose: purge keeps every later window, however
	// short the retention. purgedTo is the end up to which windows were
	// purged.
	closeMarks     []closeMark
	committedClose int64
	purgedTo       int64
	eos            bool
	// reemit: the results of uncommitted epochs are still to be emitted
	// again, and with derived state the close marks to be read (at the
	// first Process or punctuation: Init may not forward).
	reemit bool
	// noDueScan: a scan for due windows' values read too much (see
	// loadDue); closes read point by point.
	noDueScan bool

	// Per-record scratch, reused so the hot path allocates less: the
	// windows of the record, its window key (stores copy keys they keep),
	// and the record and flag the aggregate callback works on.
	wins [][2]int64
	// nextDue is at most the smallest end of a window not yet closed when
	// nextDueKnown, so closeUpTo skips the index scan while the watermark
	// stays below it (most records do not cross a window end).
	nextDue      int64
	nextDueKnown bool
	wkBuf        []byte
	cur          stream.Record[K, V]
	created      bool
	aggFn        func(old timed[A], found bool) (timed[A], error)
	// headers of the record being processed: Kafka Streams' results carry
	// the headers of the record that caused them.
	headers []stream.Header
	// pendingBound is the watermark UntilWindowCloses closes up to at the
	// record's first forward (when Kafka Streams' suppression buffer sees
	// the record); pending says it has not happened yet.
	pendingBound int64
	pending      bool
	// justEmitted is the index key of a window closeUpTo emitted at the
	// current forward point, so it is not emitted twice.
	justEmitted map[string]bool
}

// aggregate is the Update callback of Process for p.cur.
func (p *aggProcessor[K, V, A, O]) aggregate(old timed[A], found bool) (timed[A], error) {
	ts := p.cur.Timestamp.UnixMilli()
	if !found {
		old, p.created = p.fresh(ts), true
	}
	return timed[A]{ts: max(old.ts, ts), value: p.add(p.cur.Key, p.cur.Value, old)}, nil
}

// fresh is the value of a window no record was added to yet.
func (p *aggProcessor[K, V, A, O]) fresh(ts int64) timed[A] {
	return timed[A]{ts: ts, value: p.init(), empty: p.first != nil}
}

// add returns base's value with the record (k, v) added.
func (p *aggProcessor[K, V, A, O]) add(k K, v V, base timed[A]) A {
	if base.empty {
		return p.first(k, v)
	}
	return p.agg(k, v, base.value)
}

func (p *aggProcessor[K, V, A, O]) Init(ctx stream.ProcessorContext[Windowed[K], O]) error {
	var err error
	if p.main, err = stream.GetKeyValueStore[[]byte, timed[A]](ctx, p.mainName); err != nil {
		return err
	}
	p.creator, _ = p.main.(stream.KeyValueCreator[[]byte, timed[A]])
	if p.index, err = stream.GetKeyValueStore[[]byte, int64](ctx, p.indexName); err != nil {
		return err
	}
	if p.session || p.sliding {
		if p.keys, err = stream.GetKeyValueStore[[]byte, int64](ctx, p.keysName); err != nil {
			return err
		}
	}
	if wm, found, err := p.index.Get(metaKey); err != nil {
		return err
	} else if found {
		p.closedTo, p.persisted, p.durable = wm, wm, wm
	}
	if p.derived {
		if err := p.loadDerived(); err != nil {
			return err
		}
	} else if err := p.loadOpen(); err != nil {
		return err
	}
	p.eos = ctx.ExactlyOnceEnabled()
	if p.derived {
		p.reemit = true // startDerived
	} else if p.final && !p.eos {
		// Results emitted before a crash may not have reached Kafka: emit
		// again those of windows emitted in an epoch no commit covered.
		// Their values cannot have changed. A graceful hand-over commits
		// last, so it leaves nothing to make up for; under transactions a
		// window's emission and its result commit together. Forwarding
		// is not allowed in Init, so this happens first thing at the first
		// record or punctuation.
		p.reemit = true
	}
	if p.wall {
		ctx.Schedule(p.o.closeInterval, stream.WallClockTime, func(now time.Time) error {
			if err := p.reemitPending(ctx); err != nil {
				return err
			}
			return p.closeUpTo(ctx, p.boundary(ctx))
		})
	}
	return nil
}

// boundary is the close watermark implied by the clocks now.
func (p *aggProcessor[K, V, A, O]) boundary(ctx stream.ProcessorContext[Windowed[K], O]) int64 {
	b := p.closedTo
	if st := ctx.StreamTime(); !st.IsZero() {
		b = max(b, p.w.closeBound(st.UnixMilli()))
	}
	// The wall clock closes windows as of the last time the task had caught
	// up with its input: during a backlog (after a restart, a rebalance or a
	// failover) a window that closed only while the task was behind is left
	// to stream time, so records already in Kafka are not declared late for
	// the delay; one already closed before is closed for the backlog too
	// (a record for it was late when it was written).
	if p.wall {
		if at := ctx.InputCompleteAt(); !at.IsZero() {
			b = max(b, p.w.closeBound(at.UnixMilli()))
		} else if ctx.CaughtUp() {
			b = max(b, p.w.closeBound(ctx.WallClockTime().UnixMilli()))
		}
	}
	return b
}

func (p *aggProcessor[K, V, A, O]) Process(ctx stream.ProcessorContext[Windowed[K], O], rec stream.Record[K, V]) error {
	if err := p.reemitPending(ctx); err != nil {
		return err
	}
	ts := rec.Timestamp.UnixMilli()
	if ts < 0 {
		// No window holds a negative timestamp; Kafka Streams drops such
		// records before the topology and counts them.
		if err := p.reject(ctx, reasonNegative); err != nil {
			return err
		}
		return p.closeUpTo(ctx, p.boundary(ctx))
	}
	var kb []byte
	var err error
	if ka := p.ka; ka != nil && !p.session && !p.sliding {
		// A time window's record uses its key's bytes only while it is
		// processed (every store write and index entry copies them), so
		// they go to a buffer kept between records: one allocation less
		// per record. Sessions and sliding windows keep their own.
		p.kbBuf, err = ka.AppendSerialize(p.kbBuf[:0], rec.Key)
		kb = p.kbBuf
	} else {
		kb, err = p.ks.Serialize(rec.Key)
	}
	if err != nil {
		return err
	}
	bound := p.boundary(ctx)
	p.headers = rec.Headers
	defer func() { p.headers = nil }()
	if p.o.emit == UntilWindowCloses && bound > p.closedTo {
		p.pendingBound, p.pending = bound, true
	}
	switch {
	case p.session:
		err = p.processSession(ctx, rec, kb, ts, bound)
	case p.sliding:
		err = p.processSliding(ctx, rec, kb, ts, bound)
	default:
		err = p.processTime(ctx, rec, kb, ts, bound)
	}
	p.pending = false
	if err != nil {
		return err
	}
	return p.closeUpTo(ctx, bound)
}

// processTime aggregates a record into its tumbling or hopping windows, as
// Kafka Streams' KStreamWindowAggregate: each window still open (end >
// stream time - grace) is updated, closed ones are skipped.
func (p *aggProcessor[K, V, A, O]) processTime(ctx stream.ProcessorContext[Windowed[K], O], rec stream.Record[K, V], kb []byte, ts, bound int64) error {
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
			if err := p.settle(ctx, win[1], bound); err != nil {
				return err
			}
			// Closed window. Update still runs (and refuses), so a record that
			// was applied before a crash is recognised and not reported late.
			_, _, err := p.main.Update(wk, func(timed[A], bool) (timed[A], error) { return timed[A]{}, errLate })
			if errors.Is(err, errLate) {
				late++
			} else if err != nil {
				return err
			} else if p.derived {
				// Closed by the watermark, hence emitted or about to be.
			} else if err := p.ensureClosed(ctx, kb, win[0], win[1]); err != nil {
				return err
			}
			continue
		}
		p.created = false
		var v timed[A]
		var err error
		applied := true
		if p.isNew(kb, win[0], win[1]) {
			// No lookup: the store has no entry for this window.
			if v, err = p.aggregate(timed[A]{}, false); err != nil {
				return err
			}
			if err = p.creator.Create(wk, v); err != nil {
				return err
			}
		} else if v, applied, err = p.main.Update(wk, p.aggFn); err != nil {
			return err
		}
		if p.created {
			p.newShare = min(p.newShare+1, newShareMax)
			if err := p.markOpen(kb, win[0], win[1]); err != nil {
				return err
			}
		} else {
			p.newShare = max(p.newShare-1, 0)
			if !applied && !p.derived {
				// (With derived state a stored window is open by its end alone.)
				// A redelivered record the window already holds: the crash may
				// have come after the window's value reached its changelog but
				// before its index entry did. Without the entry the window
				// would never close and its result would be lost.
				if err := p.ensureIndexed(kb, win[0], win[1]); err != nil {
					return err
				}
			}
		}
		if err := p.updated(ctx, rec.Key, kb, win[0], win[1], v); err != nil {
			return err
		}
	}
	if late > 0 && late == total {
		return p.reject(ctx, "late")
	}
	return nil
}

// isNew reports whether the window [start, end) of key kb is known to have
// no entry in the window store, so that its first record can be written
// without a lookup (KeyValueCreator). With derived state every stored window
// ending after the close watermark is in the open set (loadDerived fills it
// from the store; markOpen adds each window created; only closeUpTo takes
// windows out, when it closes them, and purge deletes only closed ones),
// except a window UntilWindowCloses emitted early and the windows of a
// legacy index, which the check leaves to Update.
func (p *aggProcessor[K, V, A, O]) isNew(kb []byte, start, end int64) bool {
	if p.newShare < newShareMax/2 || p.creator == nil || !p.derived || p.legacy || p.o.emit == UntilWindowCloses || end <= p.closedTo {
		return false
	}
	p.ikBuf = appendIndexKey(p.ikBuf[:0], kb, start, end)
	return !p.open.Has(unsafe.String(unsafe.SliceData(p.ikBuf), len(p.ikBuf)))
}

// newShareMax bounds aggProcessor.newShare: about the last 64 windows
// decide.
const newShareMax = 64

// reject sends the record being processed to the late-records topic, or
// counts it as dropped, with reason.
func (p *aggProcessor[K, V, A, O]) reject(ctx stream.ProcessorContext[Windowed[K], O], reason string) error {
	if p.o.lateTopic != "" {
		return ctx.DeadLetter(p.o.lateTopic, reason)
	}
	ctx.RecordDropped(reason)
	return nil
}

// updated is called after the record changed (or created) the window [start,
// end] of key k, whose value is now v. It forwards what the emit strategy
// forwards at that point.
func (p *aggProcessor[K, V, A, O]) updated(ctx stream.ProcessorContext[Windowed[K], O], k K, kb []byte, start, end int64, v timed[A]) error {
	switch p.o.emit {
	case OnWindowUpdate:
		p.forward(ctx, k, start, end, v)
	case UntilWindowCloses:
		// Kafka Streams' suppression buffer takes the update, then emits
		// whatever is due; an update of a window at the suppression's
		// close point is due at once.
		ik := indexKey(kb, start, end)
		if err := p.forwardPoint(ctx); err != nil {
			return err
		}
		if p.justEmitted[string(ik)] || end > p.closedTo+p.lead {
			return nil
		}
		p.forward(ctx, k, start, end, v)
		p.open.Delete(string(ik))
		return p.index.Put(ik, -p.epoch(ctx))
	}
	return nil
}

// forwardPoint runs, with UntilWindowCloses, the close that Kafka Streams'
// suppression performs when it receives the record's first forward.
func (p *aggProcessor[K, V, A, O]) forwardPoint(ctx stream.ProcessorContext[Windowed[K], O]) error {
	clear(p.justEmitted)
	if !p.pending {
		return nil
	}
	p.pending = false
	if p.justEmitted == nil {
		p.justEmitted = map[string]bool{}
	}
	return p.closeUpTo(ctx, p.pendingBound)
}

// epoch is the state a window emitted now is stamped with.
func (p *aggProcessor[K, V, A, O]) epoch(ctx stream.ProcessorContext[Windowed[K], O]) int64 {
	if !p.final || p.eos {
		return 1
	}
	return int64(ctx.CommitEpoch())
}

// stable is the close watermark a replay after a crash would use at this
// point at least: the durable watermark, and what stream time closes
// (stream time is restored from the commit and replays the same way).
func (p *aggProcessor[K, V, A, O]) stable(ctx stream.ProcessorContext[Windowed[K], O]) int64 {
	s := p.durable
	if st := ctx.StreamTime(); !st.IsZero() {
		s = max(s, p.w.closeBound(st.UnixMilli()))
	}
	return s
}

// settle is called before the processor acts on "a window ending at end is
// closed" under bound. When the wall clock alone closed it, a replay after
// a crash could find it open (the clock has moved on, stream time has
// not), count a record the first run declared late, and write a second,
// different result for the window. So, without transactions, the decision
// is made durable first (checkpoint); under transactions state and effects
// commit together, and without the wall clock every decision replays.
func (p *aggProcessor[K, V, A, O]) settle(ctx stream.ProcessorContext[Windowed[K], O], end, bound int64) error {
	if !p.wall || p.eos || end > bound || end <= p.stable(ctx) {
		return nil
	}
	return p.checkpoint(ctx, bound)
}

// checkpoint writes bound as the close watermark and makes it and every
// store write before it durable (ProcessorContext.FlushStores), so a
// restarted task closes at least up to bound from its first record.
func (p *aggProcessor[K, V, A, O]) checkpoint(ctx stream.ProcessorContext[Windowed[K], O], bound int64) error {
	if err := p.index.Put(metaKey, bound); err != nil {
		return err
	}
	if err := ctx.FlushStores(); err != nil {
		return err
	}
	p.durable = max(p.durable, bound)
	return nil
}

// ensureClosed is called when a redelivered record finds the closed window
// [start, end] of key kb already holding it: the crash came after the
// window's value reached its changelog. If the window's index entry was
// lost with the crash (a store's writes go out in no particular order, so
// the watermark may have arrived without it), the window would never be
// emitted or purged: its final result is emitted now and it is marked
// closed.
func (p *aggProcessor[K, V, A, O]) ensureClosed(ctx stream.ProcessorContext[Windowed[K], O], kb []byte, start, end int64) error {
	ik := indexKey(kb, start, end)
	found, err := p.indexed(ik)
	if err != nil || found {
		return err
	}
	if p.final {
		if err := p.emitFinal(ctx, ik); err != nil {
			return err
		}
	}
	return p.index.Put(ik, p.epoch(ctx))
}

// ensureIndexed marks the window [start, end] of key kb open unless the
// index (store or open set) has an entry for it.
func (p *aggProcessor[K, V, A, O]) ensureIndexed(kb []byte, start, end int64) error {
	found, err := p.indexed(indexKey(kb, start, end))
	if err != nil || found {
		return err
	}
	return p.markOpen(kb, start, end)
}

// indexed reports whether the window of index key ik is in the open set or
// has an entry in the index store.
func (p *aggProcessor[K, V, A, O]) indexed(ik []byte) (bool, error) {
	if p.open.Has(string(ik)) {
		return true, nil
	}
	_, found, err := p.index.Get(ik)
	return found, err
}

// markOpen adds a new open window to the open set.
func (p *aggProcessor[K, V, A, O]) markOpen(kb []byte, start, end int64) error {
	if p.nextDueKnown && end < p.nextDue {
		p.nextDue = end
	}
	ik := indexKey(kb, start, end)
	p.open.ReplaceOrInsert(string(ik))
	if writeOpenEntries {
		return p.index.Put(ik, windowOpen)
	}
	return nil
}

// writeOpenEntries makes markOpen also write an open window's index entry, as
// the code before the open set did (tests: index stores of that format).
var writeOpenEntries = false

// legacyIndexFormat makes time windows keep an index entry per closed window,
// as the code before derived state did (tests: index stores of that format).
var legacyIndexFormat = false

// setState records a new state for the window of index entry e (no longer
// open: in the index store, out of the open set).
func (p *aggProcessor[K, V, A, O]) setState(e indexEntry, state int64) error {
	if e.inOpen {
		p.open.Delete(string(e.key))
	}
	return p.index.Put(e.key, state)
}

// unindex removes the window of index key ik from the open set, or else
// its entry from the index store.
func (p *aggProcessor[K, V, A, O]) unindex(ik []byte) error {
	if _, ok := p.open.Delete(string(ik)); ok {
		return nil
	}
	return p.index.Delete(ik)
}

// loadOpen fills the open set at Init: every window of the window store
// without an entry in the index store is open.
func (p *aggProcessor[K, V, A, O]) loadOpen() error {
	p.open = btree.NewG(32, func(a, b string) bool { return a < b })
	// Entries ending after the watermark are rare (windows emitted early by
	// UntilWindowCloses, or written before the open set): when there are
	// none, the windows ending after it, most of the store, are open without
	// a lookup.
	after := timeBound(math.MinInt64)
	if p.closedTo != math.MinInt64 {
		after = timeBound(p.closedTo + 1)
	}
	late, err := p.scanStored(after, timeBound(math.MaxInt64))
	if err != nil {
		return err
	}
	var ik []byte
	return p.eachStored(func(kb []byte, start, end int64) error {
		ik = appendIndexKey(ik[:0], kb, start, end)
		if end > p.closedTo && late == 0 {
			p.open.ReplaceOrInsert(string(ik))
			return nil
		}
		if _, found, err := p.index.Get(ik); err != nil {
			return err
		} else if !found {
			p.open.ReplaceOrInsert(string(ik))
		}
		return nil
	})
}

// eachStored calls fn for every window of the window store, in its order.
func (p *aggProcessor[K, V, A, O]) eachStored(fn func(kb []byte, start, end int64) error) error {
	it, err := p.main.All()
	if err != nil {
		return err
	}
	defer it.Close()
	for it.Next() {
		kb, start, end, err := decodeWindowKey(it.Key())
		if err != nil {
			return err
		}
		if err := fn(kb, start, end); err != nil {
			return err
		}
	}
	return it.Err()
}

// scanStored counts the window entries of the index store in [from, to).
func (p *aggProcessor[K, V, A, O]) scanStored(from, to []byte) (int, error) {
	it, err := p.index.Range(from, to)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for it.Next() {
		if len(it.Key()) >= 16 {
			n++
		}
	}
	return n, it.Err()
}

// closeUpTo closes every window with end <= bound, in (end, key) order,
// emitting final results as the strategy asks (UntilWindowCloses: up to
// bound + lead), then persists the watermark and purges expired windows.
func (p *aggProcessor[K, V, A, O]) closeUpTo(ctx stream.ProcessorContext[Windowed[K], O], bound int64) error {
	if bound <= p.closedTo {
		return nil
	}
	emitTo := bound + p.lead
	closed := false // a window of the store was closed
	if !p.nextDueKnown || emitTo >= p.nextDue {
		from := timeBound(math.MinInt64)
		if p.closedTo != math.MinInt64 {
			from = timeBound(p.closedTo + 1)
		}
		due, err := p.scanIndex(from, timeBound(emitTo+1), true)
		if err != nil {
			return err
		}
		if len(due) > 0 {
			// Settle the latest due window (index keys start with the end,
			// so it is the last): one checkpoint covers them all.
			_, _, last, err := decodeIndexKey(due[len(due)-1].key)
			if err != nil {
				return err
			}
			if err := p.settle(ctx, min(last, bound), bound); err != nil {
				return err
			}
		}
		if p.session && p.o.emit == OnWindowClose {
			// Kafka Streams emits closed sessions from its time-ordered
			// session store, keyed by end, start, key.
			slices.SortStableFunc(due, func(a, b indexEntry) int {
				ka, sa, ea, _ := decodeIndexKey(a.key)
				kb, sb, eb, _ := decodeIndexKey(b.key)
				return cmp.Or(cmp.Compare(ea, eb), cmp.Compare(sa, sb), bytes.Compare(ka, kb))
			})
		}
		var vals []dueValue[A]
		if p.final {
			if vals, err = p.loadDue(due); err != nil {
				return err
			}
		}
		queued := int64(math.MinInt64) // the expiry bucket last added to
		for i, e := range due {
			kb, start, end, err := decodeIndexKey(e.key)
			if err != nil {
				return err
			}
			state := e.state
			switch {
			case state == windowOpen:
				state = p.epoch(ctx)
				if p.final {
					var err error
					if vals != nil {
						err = p.emitLoaded(ctx, e.key, vals[i].v, vals[i].found)
					} else {
						err = p.emitFinal(ctx, e.key)
					}
					if err != nil {
						return err
					}
					if p.justEmitted != nil {
						p.justEmitted[string(e.key)] = true
					}
				}
				if end > bound {
					state = -state // emitted by UntilWindowCloses, still open
				}
			case end <= bound:
				state = -state // emitted earlier, closed now
			}
			if p.derived {
				// Time windows: emitTo == bound, so every due window is
				// closed now; the watermark and the close mark record it.
				// Due windows come by end: each bucket is trimmed once full.
				p.open.Delete(string(e.key))
				if end != queued {
					p.expiry.trim(queued)
					queued = end
				}
				p.expiry.add(kb, start, end)
				continue
			}
			if state != e.state {
				if err := p.setState(e, state); err != nil {
					return err
				}
			}
		}
		closed = len(due) > 0
		p.expiry.trim(queued)
		if p.nextDue, err = p.firstOpenEnd(bound); err != nil {
			return err
		}
		p.nextDueKnown = true
	}
	p.closedTo = bound
	// Late decisions change only when the watermark crosses a window end, and
	// starts are multiples of the advance: persist at most once per step.
	// With derived state a window is closed by the persisted watermark
	// alone, so a close of stored windows persists it too.
	adv := p.w.advanceMs()
	if floorDiv(bound, adv) != floorDiv(p.persisted, adv) || p.persisted == math.MinInt64 || (p.derived && closed) {
		if err := p.index.Put(metaKey, bound); err != nil {
			return err
		}
		p.persisted = bound
		if err := p.persistMark(ctx.CommitEpoch(), bound); err != nil {
			return err
		}
		if err := p.purge(ctx.CommittedEpoch(), bound); err != nil {
			return err
		}
	}
	return nil
}

// closeMark is a close watermark persisted while a commit epoch was current.
type closeMark struct {
	epoch uint64
	bound int64
}

// markClose records that the close watermark reached bound in epoch.
func (p *aggProcessor[K, V, A, O]) markClose(epoch uint64, bound int64) {
	if n := len(p.closeMarks); n > 0 && p.closeMarks[n-1].epoch == epoch {
		p.closeMarks[n-1].bound = max(p.closeMarks[n-1].bound, bound)
		return
	}
	p.closeMarks = append(p.closeMarks, closeMark{epoch, bound})
}

// purge deletes the windows that ended more than the retention before the
// close watermark bound, and only those whose close a successful commit
// covered (end <= committedClose, updated from the marks of the epochs up
// to committed): input replayed after a crash was processed after the last
// commit, so it finds every window it was counted in, and an emitted result
// that may not have reached Kafka can still be emitted again.
func (p *aggProcessor[K, V, A, O]) purge(committed uint64, bound int64) error {
	n := 0
	for _, m := range p.closeMarks {
		if m.epoch > committed {
			break
		}
		p.committedClose = max(p.committedClose, m.bound)
		n++
	}
	if p.derived && n > 0 {
		if err := p.pruneMarks(p.closeMarks[:n]); err != nil {
			return err
		}
	}
	p.closeMarks = p.closeMarks[n:]
	cutoff := min(bound-p.o.retention.Milliseconds(), p.committedClose)
	if cutoff <= p.purgedTo {
		return nil
	}
	if p.derived {
		if err := p.expiry.popUpTo(cutoff, func(kb []byte, start, end int64) error {
			return p.main.Delete(encodeWindowKey(kb, start, end))
		}); err != nil {
			return err
		}
		p.purgedTo = cutoff
		return nil
	}
	from := timeBound(math.MinInt64)
	if p.purgedTo != math.MinInt64 {
		from = timeBound(p.purgedTo + 1)
	}
	expired, err := p.scanIndex(from, timeBound(cutoff+1), false)
	if err != nil {
		return err
	}
	for _, e := range expired {
		kb, start, end, err := decodeIndexKey(e.key)
		if err != nil {
			return err
		}
		if err := p.main.Delete(encodeWindowKey(kb, start, end)); err != nil {
			return err
		}
		if e.inOpen {
			// Rare: windows are closed before they expire. The store may
			// hold a stale entry too (a session merged back into its own
			// key), so both go.
			p.open.Delete(string(e.key))
		}
		if err := p.index.Delete(e.key); err != nil {
			return err
		}
	}
	p.purgedTo = cutoff
	return nil
}

// firstOpenEnd returns the smallest end after bound of a window that is not
// closed yet (math.MaxInt64 if there is none).
func (p *aggProcessor[K, V, A, O]) firstOpenEnd(bound int64) (int64, error) {
	first := int64(math.MaxInt64)
	p.open.AscendGreaterOrEqual(string(timeBound(bound+1)), func(ik string) bool {
		first = getTime([]byte(ik[:8]))
		return false
	})
	if p.derived {
		return first, nil
	}
	// The index store holds windows emitted but open (and, if written before
	// the open set, open ones) after bound.
	it, err := p.index.Range(timeBound(bound+1), timeBound(first))
	if err != nil {
		return 0, err
	}
	defer it.Close()
	for it.Next() {
		if len(it.Key()) < 16 || it.Value() > 0 {
			continue
		}
		_, _, end, err := decodeIndexKey(it.Key())
		if err != nil {
			return 0, err
		}
		return min(end, first), nil
	}
	return first, it.Err()
}

// indexEntry is a window of the index: its index key, its state, and
// whether it is in the open set (else in the index store).
type indexEntry struct {
	key    []byte
	state  int64
	inOpen bool
}

// scanIndex returns the index entries in [from, to); notClosed keeps only
// windows not closed yet (open, or emitted but open).
func (p *aggProcessor[K, V, A, O]) scanIndex(from, to []byte, notClosed bool) ([]indexEntry, error) {
	if string(from) >= string(to) {
		return nil, nil
	}
	var open []indexEntry
	p.open.AscendRange(string(from), string(to), func(ik string) bool {
		open = append(open, indexEntry{key: []byte(ik), state: windowOpen, inOpen: true})
		return true
	})
	if p.derived {
		return open, nil // the index store holds no window entries
	}
	// Range is inclusive; to is an 8-byte time bound and index keys are longer,
	// so no key equals it.
	it, err := p.index.Range(from, to)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var stored []indexEntry
	for it.Next() {
		if len(it.Key()) < 16 || (notClosed && it.Value() > 0) {
			continue
		}
		stored = append(stored, indexEntry{key: it.Key(), state: it.Value()})
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		return open, nil
	}
	if len(open) == 0 {
		return stored, nil
	}
	// Both in index key order: merge. A window in both (only after an
	// inconsistent crash) is taken as open, as a new window is.
	out := make([]indexEntry, 0, len(open)+len(stored))
	i, j := 0, 0
	for i < len(open) || j < len(stored) {
		switch {
		case j == len(stored) || (i < len(open) && bytes.Compare(open[i].key, stored[j].key) < 0):
			out = append(out, open[i])
			i++
		case i == len(open) || bytes.Compare(open[i].key, stored[j].key) > 0:
			out = append(out, stored[j])
			j++
		default:
			out = append(out, open[i])
			i, j = i+1, j+1
		}
	}
	return out, nil
}

// dueValue is a due window's value as loadDue read it.
type dueValue[A any] struct {
	v     timed[A]
	found bool
}

// Closes of at least loadDueMin windows read their values with one range
// scan of the window store instead of a point read per window (a Pebble
// point read sets up an iterator of its own: 6 µs per window at the close
// of 1,000,000 windows). A scan that would read more than loadDueSpread
// times the due windows (the store holds many other windows between them)
// stops, and the task reads point by point from then on.
const (
	loadDueMin    = 1024
	loadDueSpread = 4
)

// loadDue reads the values of the due windows with one range scan of the
// window store, in due's order, or returns nil when the close is small or
// the scan would read too much (emitFinal then reads each window).
func (p *aggProcessor[K, V, A, O]) loadDue(due []indexEntry) ([]dueValue[A], error) {
	n := len(due)
	if n < loadDueMin || p.noDueScan {
		return nil, nil
	}
	keys := make([][]byte, n)
	ord := make([]int32, n)
	for i, e := range due {
		kb, start, end, err := decodeIndexKey(e.key)
		if err != nil {
			return nil, err
		}
		keys[i], ord[i] = encodeWindowKey(kb, start, end), int32(i)
	}
	slices.SortFunc(ord, func(a, b int32) int { return bytes.Compare(keys[a], keys[b]) })
	it, err := p.main.Range(keys[ord[0]], keys[ord[n-1]])
	if err != nil {
		return nil, err
	}
	defer it.Close()
	vals := make([]dueValue[A], n)
	j, read := 0, 0
	for j < n && it.Next() {
		if read++; read > loadDueSpread*n {
			p.noDueScan = true
			return nil, nil
		}
		k := it.Key()
		for j < n && bytes.Compare(keys[ord[j]], k) < 0 {
			j++ // not in the store
		}
		if j < n && bytes.Equal(keys[ord[j]], k) {
			vals[ord[j]] = dueValue[A]{v: it.Value(), found: true}
			j++
		}
	}
	return vals, it.Err()
}

func (p *aggProcessor[K, V, A, O]) emitFinal(ctx stream.ProcessorContext[Windowed[K], O], ik []byte) error {
	kb, start, end, err := decodeIndexKey(ik)
	if err != nil {
		return err
	}
	v, found, err := p.main.Get(encodeWindowKey(kb, start, end))
	if err != nil {
		return err
	}
	return p.emitLoaded(ctx, ik, v, found)
}

// emitLoaded forwards the final result of the window of index key ik,
// whose value v was read from the store (found: it was there).
func (p *aggProcessor[K, V, A, O]) emitLoaded(ctx stream.ProcessorContext[Windowed[K], O], ik []byte, v timed[A], found bool) error {
	kb, start, end, err := decodeIndexKey(ik)
	if err != nil {
		return err
	}
	if !found {
		// The index refers to a window the store does not hold. The runtime
		// flushes the store before the index (task.flushStores), so this
		// should not happen; if it does, it is counted and logged, never
		// silent.
		ctx.RecordDropped(reasonValueMissing)
		ctx.Logger().Error("window result lost: the window is in the index but not in the store",
			"window_start", time.UnixMilli(start).UTC(), "window_end", time.UnixMilli(end).UTC(), "key", fmt.Sprintf("%q", kb))
		return nil
	}
	k, err := p.ks.Deserialize(kb)
	if err != nil {
		return err
	}
	p.forward(ctx, k, start, end, v)
	return nil
}

// forward sends a window's value, stamped with the largest record timestamp
// in the window.
func (p *aggProcessor[K, V, A, O]) forward(ctx stream.ProcessorContext[Windowed[K], O], k K, start, end int64, v timed[A]) {
	p.forwardValue(ctx, k, start, end, p.out(v.value), v.ts)
}

func (p *aggProcessor[K, V, A, O]) forwardValue(ctx stream.ProcessorContext[Windowed[K], O], k K, start, end int64, v O, ts int64) {
	ctx.Forward(stream.Record[Windowed[K], O]{
		Key:   Windowed[K]{Key: k, Start: time.UnixMilli(start).UTC(), End: time.UnixMilli(end).UTC()},
		Value: v, Timestamp: time.UnixMilli(ts).UTC(), Headers: p.headers,
	})
}

// reemitPending runs reemitUncommitted (startDerived with derived state)
// once, before anything else the task does after Init.
func (p *aggProcessor[K, V, A, O]) reemitPending(ctx stream.ProcessorContext[Windowed[K], O]) error {
	if !p.reemit {
		return nil
	}
	p.reemit = false
	if p.derived {
		return p.startDerived(ctx)
	}
	return p.reemitUncommitted(ctx)
}

// loadDerived fills, at Init, the open set and the expiry queue from the
// window store: windows ending after the close watermark are open, the
// others closed.
func (p *aggProcessor[K, V, A, O]) loadDerived() error {
	p.open = btree.NewG(32, func(a, b string) bool { return a < b })
	var ik []byte
	if err := p.eachStored(func(kb []byte, start, end int64) error {
		if end > p.closedTo {
			ik = appendIndexKey(ik[:0], kb, start, end)
			p.open.ReplaceOrInsert(string(ik))
		} else {
			p.expiry.add(kb, start, end)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, end := range p.expiry.ends {
		p.expiry.trim(end)
	}
	n, err := p.scanStored(timeBound(math.MinInt64), timeBound(math.MaxInt64))
	p.legacy = n > 0
	return err
}

// startDerived runs at the first Process or punctuation after Init with
// derived state: it reads the close marks (the watermark the last committed
// epoch had closed, C), converts window entries an older version left in the
// index store, and, with an emit-final strategy and without transactions,
// emits again the closed windows above C: their results were written in an
// epoch no commit covered and may not have reached Kafka.
func (p *aggProcessor[K, V, A, O]) startDerived(ctx stream.ProcessorContext[Windowed[K], O]) error {
	committed := ctx.CommittedEpoch()
	c, err := p.loadMarks(committed)
	if err != nil {
		return err
	}
	if p.legacy {
		c0, err := p.convertLegacy(committed)
		if err != nil {
			return err
		}
		c = max(c, c0)
	}
	if !p.final || p.eos {
		return nil
	}
	var due [][]byte
	if err := p.expiry.each(c, p.closedTo, func(kb []byte, start, end int64) error {
		due = append(due, indexKey(kb, start, end))
		return nil
	}); err != nil {
		return err
	}
	if len(due) == 0 {
		return nil
	}
	slices.SortFunc(due, bytes.Compare) // the order of their first emission
	for _, ik := range due {
		if err := p.emitFinal(ctx, ik); err != nil {
			return err
		}
	}
	// Emitted again in this epoch: covered once it commits.
	return p.persistMark(ctx.CommitEpoch(), p.closedTo)
}

// persistMark records that the close watermark reached bound in epoch
// (markClose) and, with derived state, writes the epoch's close mark.
func (p *aggProcessor[K, V, A, O]) persistMark(epoch uint64, bound int64) error {
	p.markClose(epoch, bound)
	if !p.derived {
		return nil
	}
	return p.index.Put(markKey(epoch), bound)
}

// keepMark makes epoch's close mark the one kept as the last committed one,
// deleting the mark kept before.
func (p *aggProcessor[K, V, A, O]) keepMark(epoch uint64) error {
	if p.keptMark != 0 && p.keptMark != epoch {
		if err := p.index.Delete(markKey(p.keptMark)); err != nil {
			return err
		}
	}
	p.keptMark = epoch
	return nil
}

// loadMarks returns the close watermark of the last committed epoch (the
// largest mark of an epoch <= committed; math.MinInt64 if none), keeps that
// mark, and deletes the others: older committed ones, and those of epochs
// no commit covered (a restarted task uses their numbers again).
func (p *aggProcessor[K, V, A, O]) loadMarks(committed uint64) (int64, error) {
	it, err := p.index.Range(markKey(0), markKey(math.MaxUint64))
	if err != nil {
		return 0, err
	}
	type mark struct {
		key   []byte
		bound int64
	}
	var marks []mark
	for it.Next() {
		if isMarkKey(it.Key()) {
			marks = append(marks, mark{bytes.Clone(it.Key()), it.Value()})
		}
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return 0, err
	}
	c := int64(math.MinInt64)
	keep := -1
	for i, m := range marks { // ascending epochs
		if binary.BigEndian.Uint64(m.key[2:]) <= committed && m.bound >= c {
			c, keep = m.bound, i
		}
	}
	for i, m := range marks {
		if i == keep {
			p.keptMark = binary.BigEndian.Uint64(m.key[2:])
			continue
		}
		if err := p.index.Delete(m.key); err != nil {
			return 0, err
		}
	}
	return c, nil
}

// pruneMarks is called when a commit covered the close marks done (oldest
// first): the last of them is kept as the committed one, the others and the
// mark kept before are deleted.
func (p *aggProcessor[K, V, A, O]) pruneMarks(done []closeMark) error {
	for _, m := range done[:len(done)-1] {
		if err := p.index.Delete(markKey(m.epoch)); err != nil {
			return err
		}
	}
	return p.keepMark(done[len(done)-1].epoch)
}

// convertLegacy deletes the window entries an older version wrote to the
// index store (the state of each closed window, and with older versions an
// entry per open window) and returns the close watermark they show as
// committed: the largest end up to which every closed window of the store
// has an entry emitted in a committed epoch. It is kept as the mark of the
// committed epoch.
func (p *aggProcessor[K, V, A, O]) convertLegacy(committed uint64) (int64, error) {
	it, err := p.index.Range(timeBound(math.MinInt64), timeBound(math.MaxInt64))
	if err != nil {
		return 0, err
	}
	states := map[string]int64{}
	for it.Next() {
		if len(it.Key()) >= 16 {
			states[string(it.Key())] = it.Value()
		}
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return 0, err
	}
	// Windows come by end, ascending: the first one not emitted in a
	// committed epoch (or without an entry, which the old code emitted
	// again at its restart) bounds what is committed.
	c := p.closedTo
	stop := errors.New("uncommitted")
	err = p.expiry.each(math.MinInt64, p.closedTo, func(kb []byte, start, end int64) error {
		s, ok := states[string(indexKey(kb, start, end))]
		if !ok || s == windowOpen || uint64(max(s, -s)) > committed {
			c = end - 1
			return stop
		}
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		return 0, err
	}
	for k := range states {
		if err := p.index.Delete([]byte(k)); err != nil {
			return 0, err
		}
	}
	p.legacy = false
	if c == math.MinInt64 || committed == 0 {
		return math.MinInt64, nil
	}
	if err := p.index.Put(markKey(committed), c); err != nil {
		return 0, err
	}
	return c, p.keepMark(committed)
}

// reemitUncommitted emits again the windows emitted in an epoch that no
// commit covered (after a crash), stamping them with the current epoch.
func (p *aggProcessor[K, V, A, O]) reemitUncommitted(ctx stream.ProcessorContext[Windowed[K], O]) error {
	committed := int64(ctx.CommittedEpoch())
	all, err := p.scanIndex(timeBound(math.MinInt64), timeBound(math.MaxInt64), false)
	if err != nil {
		return err
	}
	for _, e := range all {
		state := e.state
		if state == windowOpen {
			// A window the watermark closed whose close mark a crash lost
			// (the watermark reached the changelog first): emitted, maybe
			// again, now.
			if _, _, end, err := decodeIndexKey(e.key); err != nil {
				return err
			} else if end <= p.closedTo {
				if err := p.emitFinal(ctx, e.key); err != nil {
					return err
				}
				if err := p.setState(e, p.epoch(ctx)); err != nil {
					return err
				}
			}
			continue
		}
		if max(state, -state) <= committed {
			continue
		}
		if err := p.emitFinal(ctx, e.key); err != nil {
			return err
		}
		now := p.epoch(ctx)
		if state < 0 {
			now = -now
		}
		if err := p.setState(e, now); err != nil {
			return err
		}
	}
	return nil
}

func (p *aggProcessor[K, V, A, O]) Close() error { return nil }
