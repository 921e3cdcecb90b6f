package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emostream/emostream/pkg/stream/internal/kv"
)

// Headers the runtime puts on records in repartition topics so the downstream
// task can deduplicate by the original input position.
const (
	hdrOrigin = "__stream.origin"
	hdrPos    = "__stream.pos"
)

// inRecord is a raw input record as read from Kafka (or piped by streamtest).
type inRecord struct {
	topic     string
	partition int32
	offset    int64
	key       []byte
	value     []byte
	timestamp time.Time
	headers   []Header
}

// outRecord is a raw record for a sink or a changelog.
type outRecord struct {
	topic     string
	partition int32 // -1: partition by key
	key       []byte
	value     []byte
	timestamp time.Time
	headers   []Header
	store     *storeCore // set for changelog writes
}

// taskEnv is what a task needs from whatever runs it: the Kafka runtime or the
// streamtest driver.
type taskEnv interface {
	applicationID() string
	send(t *task, r *outRecord) error
	partitions(topic string) (int32, error)
	now() time.Time
	log() *slog.Logger
	badRecord(t *task, r *inRecord, err error) error
	metrics() *Metrics
	openBackend(t *task, spec *storeSpec, changelog string) (b kv.Store, restoredTo int64, err error)
	restore(t *task, c *storeCore) error
	// globalStore returns the global table store named name.
	globalStore(name string) (*globalStore, error)
	// waitStoreAcks waits until Kafka acknowledged every changelog record
	// c sent (see task.flushStores).
	waitStoreAcks(t *task, c *storeCore) error
	// stillOwner confirms, after a durable flush, that the task still
	// belongs to this instance (its group membership is valid), and
	// returns errTaskLost otherwise.
	stillOwner(t *task) error
	// recordCache is the budget for coalescing changelog writes between
	// commits; nil writes every change through at once.
	recordCache() *recordCache
	// exactlyOnce reports whether outputs and state commit in transactions.
	exactlyOnce() bool
}

// task runs one partition of one sub-topology. All calls into it hold mu.
type task struct {
	id      TaskID
	sub     *subtopology
	env     taskEnv
	mu      sync.Mutex
	sources map[string]func(*inRecord) // resolved topic -> source input
	origins map[string]string          // resolved topic -> "topic/partition"
	// lastTopic is the previous record's topic, lastIn and lastOrigin its
	// entries in sources and origins (see process).
	lastTopic  string
	lastIn     func(*inRecord)
	lastOrigin string
	stores     map[string]*storeCore
	closers    []func() error
	// caughtUp reports whether the task has processed everything its input
	// partitions held, and as of when; nil means always, as of now
	// (LocalRunner).
	caughtUp func() (bool, time.Time)
	logger   *slog.Logger

	streamTime time.Time
	cur        struct {
		meta     RecordMetadata
		raw      *inRecord
		inRecord bool
		origin   string
		originID uint64 // originID(idOf), computed at the first write
		idOf     string
		offset   int64
		base     uint64
		writes   uint64
		sends    uint64
	}
	puncts []*punctuation
	err    error
	closed bool
	// lost is set when the instance learns it is no longer a member of the
	// group (a commit answered UNKNOWN_MEMBER_ID, say, after a long stall):
	// the task's partitions belong to another instance now, which restores
	// its stores from the changelogs. From then on nothing is processed,
	// punctuated, flushed or committed, and the task's local state is
	// dropped, as Kafka Streams closes lost tasks dirty. Set without mu.
	lost atomic.Bool
	// closing is set before the last commit of a task that is handed over
	// (revoke, shutdown, streamtest restart): from then on nothing is
	// processed or punctuated, so nothing happens that the commit misses.
	closing bool
	// epoch is the task's commit epoch bookkeeping (see CommitEpoch).
	epoch epochState
	// completeAt is the last wall-clock time the task was seen caught up
	// (see InputCompleteAt).
	completeAt time.Time
	// caughtUpLogged: InputCompleteAt has logged the task's first advance.
	caughtUpLogged bool
	// committed is, per resolved source topic, the offset and metadata of
	// the last successful commit (at creation: as fetched from Kafka).
	committed map[string]committedPosition
	// pending counts produced records not yet acknowledged by Kafka.
	pending sync.WaitGroup
	// offsets are the next offsets to commit, per resolved source topic.
	offsets map[string]int64
	// position is the next offset to process per source topic (never
	// cleared, unlike offsets under transactions).
	position map[string]int64
}

type punctuation struct {
	interval  time.Duration
	typ       PunctuationType
	fn        Punctuator
	next      time.Time
	cancelled bool
	node      string
}

func (p *punctuation) Cancel() { p.cancelled = true }

// newTask builds the processor instances of one sub-topology for one partition,
// restores its stores and initialises its processors. start holds what the
// task's last commit recorded: its commit epoch and stream time are restored
// from it before the processors' Init.
func newTask(top *Topology, st *subtopology, partition int32, env taskEnv, start taskStart) (*task, error) {
	t := &task{
		id:        TaskID{Subtopology: st.id, Partition: partition},
		sub:       st,
		env:       env,
		sources:   map[string]func(*inRecord){},
		origins:   map[string]string{},
		stores:    map[string]*storeCore{},
		offsets:   map[string]int64{},
		position:  map[string]int64{},
		committed: map[string]committedPosition{},
	}
	t.logger = env.log().With("task", fmt.Sprintf("%d_%d", st.id, partition))
	appID := env.applicationID()
	topics := make([]string, 0, len(st.sources))
	for _, s := range st.sources {
		topic := resolveTopic(appID, s)
		topics = append(topics, topic)
		if cp, ok := start.committed[topic]; ok {
			t.committed[topic] = cp
		}
	}
	// As Kafka Streams restores partition time from the commit metadata, a
	// task goes on with the stream time and epoch of its last commit.
	committedEpoch, streamTime := start.resolve(topics)
	t.epoch = epochState{current: committedEpoch + 1, committed: committedEpoch, st: streamTime}
	t.streamTime = streamTime
	t.completeAt = start.inputComplete(topics)
	for _, name := range st.stores {
		spec := top.stores[name]
		c := &storeCore{name: name, changelog: top.changelogTopic(appID, name), partition: partition, task: t}
		c.lastAcked.Store(-1)
		b, restoredTo, err := env.openBackend(t, spec, c.changelog)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("stream: open store %s for task %v: %w", name, t.id, err)
		}
		c.backend, c.restoredTo = b, restoredTo
		c.typed = spec.open(c)
		t.stores[name] = c
	}
	// The stores restore at the same time: each restore pays a fetch round
	// trip and sarama's batching of new partition consumers (100 ms), which
	// add up in a failover.
	if err := restoreAll(env, t); err != nil {
		t.close()
		return nil, err
	}
	// Build children before parents so each node receives its children's inputs.
	inputs := map[*node]any{}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(st.nodes) - 1; i >= 0; i-- {
		n := st.nodes[i]
		kids := make([]any, len(n.children))
		names := make([]string, len(n.children))
		for j, c := range n.children {
			kids[j], names[j] = inputs[c], c.name
		}
		in, closer, err := n.build(t, kids, names)
		if err != nil {
			t.closeLocked()
			return nil, fmt.Errorf("stream: init node %s of task %v: %w", n.name, t.id, err)
		}
		inputs[n] = in
		if closer != nil {
			t.closers = append(t.closers, closer)
		}
		if n.kind == kindSource {
			t.sources[resolveTopic(appID, n)] = in.(func(*inRecord))
		}
	}
	return t, nil
}

// restoreAll restores the task's stores concurrently and returns the first
// error.
func restoreAll(env taskEnv, t *task) error {
	errs := make([]error, len(t.sub.stores))
	var wg sync.WaitGroup
	for i, name := range t.sub.stores {
		c := t.stores[name]
		wg.Go(func() {
			if err := env.restore(t, c); err != nil {
				errs[i] = fmt.Errorf("stream: restore store %s for task %v: %w", name, t.id, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// process runs one input record through the task. The caller holds mu.
func (t *task) process(r *inRecord) error {
	if t.closed || t.closing || t.lost.Load() {
		return nil
	}
	// The topic of the previous record is nearly always this one's: its
	// source and origin are kept to skip two map lookups per record.
	in, origin := t.lastIn, t.lastOrigin
	if in == nil || r.topic != t.lastTopic {
		var ok bool
		if in, ok = t.sources[r.topic]; !ok {
			return fmt.Errorf("stream: task %v has no source for topic %s", t.id, r.topic)
		}
		if origin, ok = t.origins[r.topic]; !ok {
			origin = fmt.Sprintf("%s/%d", r.topic, r.partition)
			t.origins[r.topic] = origin
		}
		t.lastTopic, t.lastIn, t.lastOrigin = r.topic, in, origin
	}
	t.cur.meta = RecordMetadata{Topic: r.topic, Partition: r.partition, Offset: r.offset}
	t.cur.inRecord = true
	t.cur.raw = r
	t.cur.origin, t.cur.offset, t.cur.base = origin, r.offset, 0
	t.cur.writes, t.cur.sends = 0, 0
	// A repartitioned record keeps the position of the input it came from, so
	// a replay upstream (which writes it again at a new offset) is recognised.
	for i, h := range r.headers {
		if h.Key == hdrOrigin && i+1 < len(r.headers) && r.headers[i+1].Key == hdrPos && len(r.headers[i+1].Value) == 16 {
			p := r.headers[i+1].Value
			t.cur.origin = string(h.Value) + ">" + r.topic
			t.cur.offset = int64(binary.BigEndian.Uint64(p))
			t.cur.base = binary.BigEndian.Uint64(p[8:])
			r.headers = append(r.headers[:i:i], r.headers[i+2:]...)
			break
		}
	}
	in(r)
	t.cur.inRecord, t.cur.raw = false, nil
	if t.err != nil {
		if t.lost.Load() {
			return nil // dropped, not failed
		}
		return t.err
	}
	t.offsets[r.topic] = r.offset + 1
	t.position[r.topic] = r.offset + 1
	return t.punctuate(StreamTime, t.streamTime)
}

func (t *task) advanceStreamTime(ts time.Time) {
	if ts.After(t.streamTime) {
		t.streamTime = ts
	}
}

// punctuate fires due punctuations of one type. The caller holds mu.
func (t *task) punctuate(typ PunctuationType, now time.Time) error {
	return t.firePunctuations(typ, now, false)
}

// punctuateAtHandOver fires every wall-clock punctuation once more, due or
// not, before a graceful hand-over's last commit (see
// App.handOverPunctuations). The caller holds mu.
func (t *task) punctuateAtHandOver(now time.Time) error {
	return t.firePunctuations(WallClockTime, now, true)
}

func (t *task) firePunctuations(typ PunctuationType, now time.Time, all bool) error {
	if now.IsZero() || t.closed || t.closing || t.lost.Load() {
		return nil
	}
	for _, p := range t.puncts {
		if p.cancelled || p.typ != typ {
			continue
		}
		switch {
		case all:
		case p.next.IsZero():
			p.next = now.Add(p.interval)
			continue
		case now.Before(p.next):
			continue
		}
		// Missed intervals are skipped: one call per catch-up, as Kafka Streams does.
		for !p.next.IsZero() && !now.Before(p.next) {
			p.next = p.next.Add(p.interval)
		}
		saved := t.cur
		t.cur.inRecord = false
		t.cur.origin = ""
		err := p.fn(now)
		t.cur = saved
		if m := t.env.metrics(); m != nil {
			m.punctuations.WithLabelValues(typ.String()).Inc()
		}
		if t.lost.Load() {
			return nil // dropped, not failed (see membershipLost)
		}
		if err != nil {
			return &ProcessError{Node: p.node, Topic: "punctuation", Partition: t.id.Partition, Offset: -1, Err: err}
		}
		if t.err != nil {
			return t.err
		}
	}
	t.puncts = compactPuncts(t.puncts)
	return nil
}

func compactPuncts(ps []*punctuation) []*punctuation {
	out := ps[:0]
	for _, p := range ps {
		if !p.cancelled {
			out = append(out, p)
		}
	}
	return out
}

func (t *task) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

// nextWritePosition returns the dedup position of the next store write.
func (t *task) nextWritePosition() writePosition {
	if !t.cur.inRecord {
		return writePosition{}
	}
	t.cur.writes++
	if t.cur.idOf != t.cur.origin {
		t.cur.originID, t.cur.idOf = originID(t.cur.origin), t.cur.origin
	}
	return writePosition{origin: t.cur.origin, id: t.cur.originID, offset: t.cur.offset, sub: t.cur.base<<16 | t.cur.writes}
}

// originHeaders are the headers a repartition sink adds.
func (t *task) originHeaders() []Header {
	if !t.cur.inRecord {
		return nil
	}
	t.cur.sends++
	p := make([]byte, 16)
	binary.BigEndian.PutUint64(p, uint64(t.cur.offset))
	binary.BigEndian.PutUint64(p[8:], t.cur.base<<16|t.cur.sends)
	return []Header{{Key: hdrOrigin, Value: []byte(t.cur.origin)}, {Key: hdrPos, Value: p}}
}

func (t *task) sendChangelog(c *storeCore, key, value []byte) {
	err := t.env.send(t, &outRecord{topic: c.changelog, partition: c.partition, key: key, value: value, timestamp: t.streamTime, store: c})
	if err != nil {
		t.fail(err)
	}
}

// flushStores sends every store's held-back changelog writes, store by store
// in the order the topology declares them (Builder.AddStore). Without
// transactions, a store's writes are sent only once Kafka has acknowledged
// the earlier stores' writes, so after a crash a store's changelog never
// holds a write made after one an earlier store's changelog lacks: a
// processor can keep an index or a status in a later store and rely on the
// data it refers to being in the earlier ones (pkg/window does). Under
// transactions everything commits together and nothing waits. The caller
// holds mu.
func (t *task) flushStores() {
	names := t.sub.stores
	for i, name := range names {
		if t.lost.Load() {
			t.discardDirty()
			return
		}
		c := t.stores[name]
		if c == nil {
			continue
		}
		c.flush()
		if t.env.exactlyOnce() || !t.dirtyAfter(names[i+1:]) {
			continue
		}
		if err := t.env.waitStoreAcks(t, c); err != nil {
			t.fail(err)
			return
		}
	}
}

// discardDirty drops the stores' held-back writes without sending them (a
// lost task). The caller holds mu.
func (t *task) discardDirty() {
	for _, c := range t.stores {
		c.dropDirty()
	}
}

// flushStoresDurably flushes the stores as flushStores does and waits
// until Kafka acknowledged every store's changelog writes (at-least-once;
// nothing to do under transactions). The caller holds mu.
func (t *task) flushStoresDurably() error {
	if t.env.exactlyOnce() {
		return nil
	}
	t.flushStores()
	if t.err != nil {
		return t.err
	}
	for _, name := range t.sub.stores {
		if c := t.stores[name]; c != nil {
			if err := t.env.waitStoreAcks(t, c); err != nil {
				t.fail(err)
				return err
			}
		}
	}
	if t.lost.Load() {
		return errTaskLost
	}
	// The flushed state is in Kafka; the effect that follows is safe only if
	// no other instance can have restored the task before it got there.
	return t.env.stillOwner(t)
}

// errTaskLost is what FlushStores returns in a task that was lost while it
// waited: its partitions belong to another instance now.
var errTaskLost = errors.New("stream: the task's partitions were assigned to another instance")

// dirtyAfter reports whether any of the named stores holds back writes.
func (t *task) dirtyAfter(names []string) bool {
	for _, name := range names {
		if c := t.stores[name]; c != nil && len(c.dirty) > 0 {
			return true
		}
	}
	return false
}

func (t *task) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closeLocked()
}

func (t *task) closeLocked() error {
	t.closed = true
	var first error
	for _, c := range t.closers {
		if err := c(); err != nil && first == nil {
			first = err
		}
	}
	t.closers = nil
	for _, c := range t.stores {
		c.closed.Store(true)
	}
	return first
}

// procContext is the ProcessorContext of one node instance.
type procContext[K, V any] struct {
	t      *task
	node   *node
	kids   []func(Record[K, V])
	names  []string
	stores map[string]bool
	logger *slog.Logger
}

func (c *procContext[K, V]) Forward(rec Record[K, V]) {
	for _, k := range c.kids {
		k(rec)
	}
}

func (c *procContext[K, V]) ForwardTo(child string, rec Record[K, V]) {
	for i, n := range c.names {
		if n == child {
			c.kids[i](rec)
			return
		}
	}
	c.t.fail(fmt.Errorf("stream: node %s has no child %q", c.node.name, child))
}

func (c *procContext[K, V]) Store(name string) (StateStore, error) {
	if !c.stores[name] {
		return nil, fmt.Errorf("%w: %q (node %s did not declare it)", ErrStoreNotFound, name, c.node.name)
	}
	s, ok := c.t.stores[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrStoreNotFound, name)
	}
	return s.typed, nil
}

func (c *procContext[K, V]) Schedule(interval time.Duration, typ PunctuationType, fn Punctuator) Cancellable {
	if interval <= 0 {
		interval = time.Millisecond
	}
	p := &punctuation{interval: interval, typ: typ, fn: fn, node: c.node.name}
	if typ == WallClockTime {
		p.next = c.t.env.now().Add(interval)
	} else if !c.t.streamTime.IsZero() {
		p.next = c.t.streamTime.Add(interval)
	}
	c.t.puncts = append(c.t.puncts, p)
	return p
}

func (c *procContext[K, V]) TaskID() TaskID { return c.t.id }

func (c *procContext[K, V]) ExactlyOnceEnabled() bool { return c.t.env.exactlyOnce() }

func (c *procContext[K, V]) CommitEpoch() uint64 {
	c.t.epoch.used = true
	return c.t.epoch.current
}

func (c *procContext[K, V]) CommittedEpoch() uint64 { return c.t.epoch.committed }

func (c *procContext[K, V]) FlushStores() error { return c.t.flushStoresDurably() }

func (c *procContext[K, V]) InputCompleteAt() time.Time {
	t := c.t
	if t.caughtUp == nil {
		t.completeAt = t.env.now()
	} else if _, asOf := t.caughtUp(); asOf.After(t.completeAt) {
		if !t.caughtUpLogged {
			t.caughtUpLogged = true
			t.logger.Debug("task caught up with its input", slog.Time("as_of", asOf), slog.Time("was", t.completeAt))
		}
		t.completeAt = asOf
	}
	return t.completeAt
}

func (c *procContext[K, V]) CaughtUp() bool {
	if c.t.caughtUp == nil {
		return true
	}
	ok, _ := c.t.caughtUp()
	return ok
}

func (c *procContext[K, V]) RecordDropped(reason string) {
	if m := c.t.env.metrics(); m != nil {
		m.dropped.WithLabelValues(reason).Inc()
	}
}

func (c *procContext[K, V]) DeadLetter(topic, reason string) error {
	r := c.t.cur.raw
	if r == nil || !c.t.cur.inRecord {
		return fmt.Errorf("stream: DeadLetter outside of record processing (node %s)", c.node.name)
	}
	if m := c.t.env.metrics(); m != nil {
		m.deadLetters.WithLabelValues(reason).Inc()
	}
	return c.t.env.send(c.t, deadLetter(topic, r, reason, c.t.env.now()))
}

func (c *procContext[K, V]) RecordMetadata() (RecordMetadata, bool) {
	return c.t.cur.meta, c.t.cur.inRecord
}

func (c *procContext[K, V]) StreamTime() time.Time    { return c.t.streamTime }
func (c *procContext[K, V]) WallClockTime() time.Time { return c.t.env.now() }
func (c *procContext[K, V]) ApplicationID() string    { return c.t.env.applicationID() }
func (c *procContext[K, V]) Logger() *slog.Logger     { return c.logger }

// typedKids converts built child inputs to typed functions.
func typedKids[K, V any](n *node, kids []any) ([]func(Record[K, V]), error) {
	out := make([]func(Record[K, V]), len(kids))
	for i, k := range kids {
		f, ok := k.(func(Record[K, V]))
		if !ok {
			return nil, fmt.Errorf("%w: node %s: child %s expects %T", ErrInvalidTopology, n.name, n.children[i].name, k)
		}
		out[i] = f
	}
	return out, nil
}
