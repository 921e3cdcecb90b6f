package stream

// Global tables (Kafka Streams' GlobalKTable): a table that every instance
// holds whole, read from every partition of its topic outside the consumer
// group, and the stream joins that look it up.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/pkg/stream/internal/kv"
)

// GlobalTable is a table that every instance of an application holds
// whole: its store is filled from every partition of its topic — not only
// the partitions of the instance's tasks — and kept current while the
// application runs (Kafka Streams' GlobalKTable). A stream joins it with
// [JoinGlobal] and [LeftJoinGlobal] by any key computed from its records,
// without repartitioning. The topic is its own changelog: nothing else is
// written. Before any task processes, the instance reads the topic up to its
// end as of the start (Kafka Streams' global state bootstrap); updates that
// arrive later are applied as they come, so a join sees the table as of
// when it runs, not as of its record's timestamp.
type GlobalTable[K, V any] struct {
	b     *Builder
	store string
	topic string
	ks    Serde[K]
	vs    Serde[V]
}

// Store is the name of the table's store.
func (g *GlobalTable[K, V]) Store() string { return g.store }

// globalSpec is a global table of a topology.
type globalSpec struct {
	store string
	topic string
}

// GlobalTableSource reads topic as a global table keyed and valued by the
// serdes (Kafka Streams' StreamsBuilder.globalTable). A record with a null
// value (a tombstone) deletes its key. The store is named after
// Materialized.StoreName when given; its other fields are ignored (a global
// store is always in memory).
func GlobalTableSource[K, V any](b *Builder, topic string, keySerde Serde[K], valueSerde Serde[V], m ...Materialized[K, V]) *GlobalTable[K, V] {
	g := &GlobalTable[K, V]{b: b, topic: topic, ks: keySerde, vs: valueSerde}
	if len(m) > 0 {
		g.store = m[0].StoreName
	}
	if g.store == "" {
		g.store = b.newName("GLOBALKTABLE-SOURCE") + "-STATE-STORE"
	}
	switch {
	case topic == "":
		b.fail(fmt.Errorf("%w: a global table needs a topic", ErrInvalidTopology))
	case keySerde == nil || valueSerde == nil:
		b.fail(fmt.Errorf("%w: global table %q needs a key and a value serde", ErrInvalidTopology, topic))
	case b.stores[g.store] != nil:
		b.fail(fmt.Errorf("%w: store %q added twice", ErrInvalidTopology, g.store))
	default:
		for _, s := range b.globals {
			if s.topic == topic || s.store == g.store {
				b.fail(fmt.Errorf("%w: global table %q (store %q) added twice", ErrInvalidTopology, topic, g.store))
				return g
			}
		}
		b.globals = append(b.globals, &globalSpec{store: g.store, topic: topic})
	}
	return g
}

// JoinGlobal joins each record of s with the value of the global table g
// under keyMapper(key, value) (Kafka Streams' KStream.join(GlobalKTable)).
// A record whose mapped key has no value in g is dropped. The result keeps
// the record's key, timestamp and headers. The stream is not repartitioned:
// every instance holds all of g.
func JoinGlobal[K, V, GK, GV, VR any](s *Stream[K, V], g *GlobalTable[GK, GV], keyMapper func(k K, v V) GK, joiner func(v V, gv GV) VR) *Stream[K, VR] {
	return globalJoin(s, g, "KSTREAM-JOIN", false, keyMapper, func(v V, gv *GV) VR { return joiner(v, *gv) })
}

// LeftJoinGlobal is JoinGlobal that keeps the records whose mapped key has
// no value in g: joiner gets nil for it (Kafka Streams'
// KStream.leftJoin(GlobalKTable)).
func LeftJoinGlobal[K, V, GK, GV, VR any](s *Stream[K, V], g *GlobalTable[GK, GV], keyMapper func(k K, v V) GK, joiner func(v V, gv *GV) VR) *Stream[K, VR] {
	return globalJoin(s, g, "KSTREAM-LEFTJOIN", true, keyMapper, joiner)
}

// globalStores is what a processor context gives a global join.
type globalStores interface {
	globalStore(name string) (*globalStore, error)
}

func globalJoin[K, V, GK, GV, VR any](s *Stream[K, V], g *GlobalTable[GK, GV], prefix string, left bool, keyMapper func(K, V) GK, joiner func(V, *GV) VR) *Stream[K, VR] {
	name := s.b.newName(prefix)
	if g == nil || g.b != s.b || keyMapper == nil || joiner == nil {
		s.b.fail(fmt.Errorf("%w: %s needs a global table of the same builder, a key mapper and a joiner", ErrInvalidTopology, name))
		return &Stream[K, VR]{b: s.b, n: s.n}
	}
	return addProcessor(s.b, name, func() Processor[K, V, K, VR] {
		var gs *globalStore
		return &funcProcessor[K, V, K, VR]{
			init: func(ctx ProcessorContext[K, VR]) error {
				host, ok := ctx.(globalStores)
				if !ok {
					return fmt.Errorf("%w: %q (global stores need the runtime's context)", ErrStoreNotFound, g.store)
				}
				var err error
				gs, err = host.globalStore(g.store)
				return err
			},
			process: func(ctx ProcessorContext[K, VR], r Record[K, V]) error {
				kb, err := g.ks.Serialize(keyMapper(r.Key, r.Value))
				if err != nil {
					return err
				}
				raw, found, err := gs.get(kb)
				if err != nil {
					return err
				}
				var gv *GV
				if found {
					v, err := g.vs.Deserialize(raw)
					if err != nil {
						return fmt.Errorf("stream: global table %s, value of key %q: %w", g.topic, kb, err)
					}
					gv = &v
				} else if !left {
					return nil
				}
				ctx.Forward(Record[K, VR]{Key: r.Key, Value: joiner(r.Value, gv), Timestamp: r.Timestamp, Headers: r.Headers})
				return nil
			},
		}
	}, nil, false, s.n)
}

// globalStore is the runtime's copy of a global table: raw keys and values,
// written by the global updater and read by every task.
type globalStore struct {
	spec *globalSpec
	mu   sync.RWMutex
	b    kv.Store
}

func newGlobalStore(spec *globalSpec) *globalStore {
	return &globalStore{spec: spec, b: kv.NewMemory()}
}

func (g *globalStore) get(key []byte) ([]byte, bool, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.b.Get(key)
}

// apply writes a record of the table's topic: a nil value deletes the key.
func (g *globalStore) apply(key, value []byte) error {
	if key == nil {
		return nil // a table has no null key (Kafka Streams skips them too)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if value == nil {
		return g.b.Delete(key)
	}
	return g.b.Put(key, value)
}

func (g *globalStore) close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.Close()
}

// globalStore implements globalStores for processors.
func (c *procContext[K, V]) globalStore(name string) (*globalStore, error) {
	return c.t.env.globalStore(name)
}

// globalIdle is how long a global bootstrap waits without a record before
// it asks the partition's last stable offset again: the tail may hold only
// transaction markers, which a read_committed consumer never delivers.
const globalIdle = time.Second

// startGlobals fills every global table of the topology from its topic up
// to the end offsets of now, then keeps them current in the background
// until ctx ends. It returns once every table is bootstrapped.
func (a *App) startGlobals(ctx context.Context) error {
	if len(a.top.globals) == 0 {
		return nil
	}
	stores := map[string]*globalStore{}
	for _, spec := range a.top.globals {
		stores[spec.store] = newGlobalStore(spec)
	}
	a.globalMu.Lock()
	a.globals = stores
	a.globalMu.Unlock()
	type part struct {
		g *globalStore
		p int32
	}
	var parts []part
	for _, spec := range a.top.globals {
		ps, err := await(a.life, ctx, func() ([]int32, error) { return a.client.Partitions(spec.topic) }, nil)
		if err != nil {
			return fmt.Errorf("stream: global table %s: %w", spec.topic, err)
		}
		for _, p := range ps {
			parts = append(parts, part{stores[spec.store], p})
		}
	}
	errs := make(chan error, len(parts))
	start := time.Now()
	for _, pt := range parts {
		a.life.bg.Add(1)
		go func() {
			defer a.life.bg.Done()
			a.followGlobal(ctx, pt.g, pt.p, errs)
		}()
	}
	for range parts {
		select {
		case err := <-errs:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, g := range stores {
		a.cfg.logger.Info("global table bootstrapped", slog.String("application_id", a.cfg.appID), slog.String("topic", g.spec.topic),
			slog.Int64("keys", g.b.ApproximateLen()), slog.Duration("took", time.Since(start)))
	}
	return nil
}

// followGlobal reads partition p of g's topic from its start: it reports on
// bootstrapped (nil, or the error that stopped it) once it has read up to
// the partition's last stable offset of now, then goes on applying new
// records until ctx ends.
func (a *App) followGlobal(ctx context.Context, g *globalStore, p int32, bootstrapped chan<- error) {
	topic := g.spec.topic
	done := false
	report := func(err error) {
		if !done {
			done = true
			bootstrapped <- err
		}
	}
	end, err := a.lastStableOffset(topic, p)
	if err != nil {
		report(fmt.Errorf("stream: global table %s/%d: end offset: %w", topic, p, err))
		return
	}
	pc, err := a.consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
	if err != nil {
		report(fmt.Errorf("stream: global table %s/%d: %w", topic, p, err))
		return
	}
	defer pc.Close()
	next := int64(-1)
	if oldest, err := a.client.GetOffset(topic, p, sarama.OffsetOldest); err == nil && oldest >= end {
		report(nil) // empty
	}
	idle := time.NewTicker(globalIdle)
	defer idle.Stop()
	got := false
	for {
		select {
		case <-ctx.Done():
			report(ctx.Err())
			return
		case m, ok := <-pc.Messages():
			if !ok {
				report(fmt.Errorf("stream: global table %s/%d: consumer closed", topic, p))
				return
			}
			got = true
			if err := g.apply(m.Key, m.Value); err != nil {
				report(err)
				if ctx.Err() == nil {
					a.fail(fmt.Errorf("stream: global table %s/%d: %w", topic, p, err))
				}
				return
			}
			next = m.Offset + 1
			if next >= end {
				report(nil)
			}
		case e := <-pc.Errors():
			if !done {
				report(fmt.Errorf("stream: global table %s/%d: %w", topic, p, e))
				return
			}
			a.cfg.logger.Warn("global table consumer", slog.String("topic", topic), slog.Int("partition", int(p)), slog.Any("err", e))
		case <-idle.C:
			if done || got || pc.HighWaterMarkOffset() == 0 {
				got = false
				continue
			}
			// Nothing for a second although the bootstrap is not done: the
			// rest up to end is markers or aborted records, unless the
			// stable offset moved (then read on to the new one).
			if now, err := a.lastStableOffset(topic, p); err == nil && now == end {
				report(nil)
			} else if err == nil {
				end = now
			}
		}
	}
}

// globalStore returns the App's global store named name.
func (a *App) globalStore(name string) (*globalStore, error) {
	a.globalMu.RLock()
	defer a.globalMu.RUnlock()
	if g, ok := a.globals[name]; ok {
		return g, nil
	}
	return nil, fmt.Errorf("%w: global store %q", ErrStoreNotFound, name)
}

// closeGlobals releases the global stores.
func (a *App) closeGlobals() {
	a.globalMu.Lock()
	defer a.globalMu.Unlock()
	for _, g := range a.globals {
		_ = g.close()
	}
	a.globals = nil
}

// globalStore returns the runner's global store named name.
func (l *LocalRunner) globalStore(name string) (*globalStore, error) {
	if g, ok := l.globals[name]; ok {
		return g, nil
	}
	return nil, fmt.Errorf("%w: global store %q", ErrStoreNotFound, name)
}
