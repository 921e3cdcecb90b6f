package stream

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emostream/emostream/pkg/stream/internal/kv"
)

// LocalRunner runs a Topology in process without Kafka: every topic is an
// in-memory list, repartition topics feed their downstream tasks directly, and
// the wall clock moves only when told to. It is the engine of streamtest
// (use that package in tests); it is exported for tools and benchmarks that
// want to run a topology's logic without a broker.
//
// Records are processed synchronously: when Pipe returns, the record and
// everything it caused downstream have been processed.
type LocalRunner struct {
	cfg    config
	top    *Topology
	mu     sync.Mutex
	clock  time.Time
	tasks  map[TaskID]*task
	byTop  map[string][]*task // resolved source topic -> tasks by partition
	output map[string][]RawRecord
	queue  []*inRecord
	offs   map[string]int64
	inputs map[string][]*inRecord // piped input per "topic/partition", for Redeliver
	// backends outlive tasks: a restarted task gets its stores' contents
	// back, as a new owner restoring the changelog would.
	backends map[backendKey]kv.Store
	// globals are the global tables' stores, by store and by topic; a
	// record piped to a global table's topic updates its store at once.
	globals      map[string]*globalStore
	globalTopics map[string]*globalStore
	met          *Metrics
	err          error

	// The crash model (CommitManually): commits happen only when asked,
	// store writes are held back in a record cache as an App's are, and
	// durable holds what each store's changelog received, per store and
	// partition (a nil value is a deletion). lastCommit is each task's last
	// commit; arrival is every record written to a topic the tasks read,
	// in order, for Crash to deliver again; backlog is set while Crash
	// delivers it (the tasks are then not caught up).
	manual     bool
	rc         *recordCache
	durable    map[backendKey]map[string][]byte
	lastCommit map[TaskID]taskStart
	arrival    []*inRecord
	backlog    bool
}

// RawRecord is a serialized record as written to a topic by a LocalRunner.
type RawRecord struct {
	// Topic is the topic written (internal topics with the application id
	// prefix).
	Topic string
	// Partition is the partition the record went to.
	Partition int32
	// Offset is the record's offset in its partition.
	Offset int64
	// Key is the serialized key (nil for a null key).
	Key []byte
	// Value is the serialized value (nil for a tombstone).
	Value []byte
	// Timestamp is the record timestamp.
	Timestamp time.Time
	// Headers are the record headers.
	Headers []Header
}

// NewLocalRunner builds the tasks of every sub-topology for every partition
// (Partitions, default 1) and initialises them. Options other than
// ApplicationID, Logger, Partitions, StartTime, OnDeserializationError and
// (with CommitManually) CacheMaxBytes are ignored.
//
// A LocalRunner commits, as Kafka Streams' TopologyTestDriver does, after
// every Pipe, Redeliver and AdvanceWallClock that succeeds: each task's
// commit epoch advances if it was used (see CommitEpoch) or stream time
// moved, and the epoch and stream time are what Restart carries over.
func NewLocalRunner(top *Topology, opts ...Opt) (*LocalRunner, error) {
	if top == nil {
		return nil, errNilTopology
	}
	cfg := defaultConfig()
	cfg.appID = "local"
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(false); err != nil {
		return nil, err
	}
	l := &LocalRunner{
		cfg: cfg, top: top, clock: cfg.startTime,
		tasks: map[TaskID]*task{}, byTop: map[string][]*task{},
		output: map[string][]RawRecord{}, offs: map[string]int64{},
		inputs: map[string][]*inRecord{}, backends: map[backendKey]kv.Store{},
		globals: map[string]*globalStore{}, globalTopics: map[string]*globalStore{},
	}
	for _, spec := range top.globals {
		g := newGlobalStore(spec)
		l.globals[spec.store], l.globalTopics[spec.topic] = g, g
	}
	l.met = newMetrics(cfg.appID, func() map[string]int64 { return nil })
	if err := l.buildTasks(nil); err != nil {
		return nil, err
	}
	return l, nil
}

// buildTasks creates every task, each from the commit start holds for it.
func (l *LocalRunner) buildTasks(start map[TaskID]taskStart) error {
	for _, st := range l.top.subs {
		for p := int32(0); p < l.cfg.partitions; p++ {
			t, err := newTask(l.top, st, p, l, start[TaskID{Subtopology: st.id, Partition: p}])
			if err != nil {
				return err
			}
			if l.manual {
				t.caughtUp = l.caughtUp
			}
			l.tasks[t.id] = t
			for _, s := range st.sources {
				rt := resolveTopic(l.cfg.appID, s)
				l.byTop[rt] = append(l.byTop[rt], t)
			}
		}
	}
	return nil
}

// commit is the runner's commit: every task whose epoch was used or whose
// stream time moved commits its current epoch. With CommitManually it first
// sends the stores' held-back writes to their changelogs and records the
// commit (offsets and metadata) for Crash. The caller holds l.mu.
func (l *LocalRunner) commit() {
	for _, t := range l.tasks {
		t.mu.Lock()
		if l.manual {
			t.flushStores()
			meta, _, _ := t.commitMeta()
			l.lastCommit[t.id] = t.startAt(meta)
		}
		if t.needsCommit() {
			t.epochCommitted(t.epoch.current, t.streamTime)
		}
		t.mu.Unlock()
	}
}

// CommitManually switches the runner to the crash model: it commits only
// when Commit (or Restart) is called, not after every step; store writes
// are held back between commits in a record cache, as an App's are, and
// sent to a simulated changelog when the cache is full, at a commit, or
// when a processor calls FlushStores; Crash then loses what the
// changelogs did not receive. Call it before the first record.
func (l *LocalRunner) CommitManually() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.offs) > 0 || len(l.output) > 0 {
		return errors.New("stream: CommitManually must be called before any record is piped")
	}
	if l.manual {
		return nil
	}
	l.manual = true
	if l.cfg.cacheMaxBytes > 0 {
		l.rc = &recordCache{max: l.cfg.cacheMaxBytes}
	}
	l.durable, l.lastCommit = map[backendKey]map[string][]byte{}, map[TaskID]taskStart{}
	// The tasks built so far get the crash model's notion of caught up.
	for _, t := range l.tasks {
		t.mu.Lock()
		t.caughtUp = l.caughtUp
		t.mu.Unlock()
	}
	return nil
}

// caughtUp is the tasks' caught-up report in the crash model: not while
// Crash delivers the uncommitted input again, caught up as of now
// otherwise. The caller holds l.mu.
func (l *LocalRunner) caughtUp() (bool, time.Time) {
	if l.backlog {
		return false, time.Time{}
	}
	return true, l.clock
}

// startAt is what a task created from a commit of t with metadata meta
// starts from: per source topic, the next offset to process (or, for one
// it processed nothing of, the offset it started from). The caller holds
// t.mu.
func (t *task) startAt(meta string) taskStart {
	ts := taskStart{committed: map[string]committedPosition{}}
	for topic := range t.sources {
		off := int64(-1)
		if o, ok := t.position[topic]; ok {
			off = o
		} else if cp, ok := t.committed[topic]; ok {
			off = cp.offset
		}
		ts.committed[topic] = committedPosition{offset: off, meta: meta}
	}
	return ts
}

// Commit commits every task now: with CommitManually, its held-back store
// writes go to the changelogs and its offsets and metadata (commit epoch,
// stream time, input completeness) are recorded for Crash. Without it the
// runner commits after every step anyway.
func (l *LocalRunner) Commit() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	l.commit()
	return nil
}

// Crash simulates a SIGKILL of the application followed by a restart, as
// at-least-once processing sees it. Nothing is closed or committed. With
// CommitManually, every store is reset to what its changelog received
// (writes still held back are lost), the tasks are created again from their
// last commit (commit epoch, stream time and input completeness from its
// metadata), and every record written after the committed offsets of the
// tasks' input partitions — input and repartition topics alike — is
// processed again, in the order it was first written, while the tasks are
// not caught up (CaughtUp false, InputCompleteAt from the commit). Output
// written before the crash stays: Kafka keeps it. Without CommitManually
// every step was committed and durable, so Crash only recreates the tasks.
func (l *LocalRunner) Crash() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	for _, t := range l.tasks {
		t.mu.Lock()
		t.closed = true
		t.discardDirty()
		for _, c := range t.stores {
			c.closed.Store(true)
		}
		t.mu.Unlock()
	}
	start := map[TaskID]taskStart{}
	if l.manual {
		for k, b := range l.backends {
			_ = b.Close()
			nb := kv.NewMemory()
			for key, v := range l.durable[k] {
				if v != nil {
					if err := nb.Put([]byte(key), v); err != nil {
						return l.setErr(err)
					}
				}
			}
			l.backends[k] = nb
		}
		for id, ts := range l.lastCommit {
			start[id] = ts
		}
	} else {
		// Every step was committed: each task starts from its own state.
		for _, t := range l.ordered() {
			start[t.id] = t.startAt(withInputComplete(encodeCommitMeta(t.epoch.committed, t.epoch.st), t.completeAt))
		}
	}
	l.queue = nil
	l.tasks, l.byTop = map[TaskID]*task{}, map[string][]*task{}
	if err := l.buildTasks(start); err != nil {
		return l.setErr(err)
	}
	if !l.manual {
		return nil
	}
	for _, r := range l.arrival {
		ts := l.byTop[r.topic]
		if int(r.partition) >= len(ts) {
			continue
		}
		t := ts[r.partition]
		if cp, ok := start[t.id].committed[r.topic]; ok && cp.offset >= 0 && r.offset < cp.offset {
			continue
		}
		l.queue = append(l.queue, copyRecord(r))
	}
	l.backlog = true
	err := l.drain()
	l.backlog = false
	return err
}

// Restart restarts every task gracefully, as a clean shutdown followed by a
// start (or a rebalance) does in Kafka: it commits, closes every processor
// (Close) and task, then creates the tasks again — their processors' Init
// runs again — over the same store contents, as a new owner restoring the
// changelogs would see them, with the committed epoch and stream time read
// back from the commit's metadata. Inputs piped before stay available to
// Redeliver; output not yet read stays readable.
func (l *LocalRunner) Restart() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	for _, t := range l.tasks {
		t.mu.Lock()
		t.closing = true
		t.mu.Unlock()
	}
	l.commit()
	start := map[TaskID]taskStart{}
	var errs []error
	for _, t := range l.ordered() {
		t.mu.Lock()
		start[t.id] = t.startAt(encodeCommitMeta(t.epoch.committed, t.epoch.st))
		t.mu.Unlock()
		errs = append(errs, t.close())
	}
	if err := errors.Join(errs...); err != nil {
		return l.setErr(err)
	}
	// Records a processor's Close sent to a repartition topic are read by
	// the new tasks, as they would be from Kafka.
	queued := l.queue
	l.queue = nil
	l.tasks, l.byTop = map[TaskID]*task{}, map[string][]*task{}
	if err := l.buildTasks(start); err != nil {
		return l.setErr(err)
	}
	l.queue = queued
	if err := l.drain(); err != nil {
		return err
	}
	l.commit()
	return nil
}

// ordered returns the tasks sorted by sub-topology and partition.
func (l *LocalRunner) ordered() []*task {
	out := make([]*task, 0, len(l.tasks))
	for _, t := range l.tasks {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].id.Subtopology != out[j].id.Subtopology {
			return out[i].id.Subtopology < out[j].id.Subtopology
		}
		return out[i].id.Partition < out[j].id.Partition
	})
	return out
}

// Collector returns the runner's Prometheus metrics (the same families as
// App.Collector), counted since the runner was created.
func (l *LocalRunner) Collector() prometheus.Collector { return l.met }

// Pipe writes one record to an input topic and processes it and everything it
// causes. A nil key is sent to partition 0.
func (l *LocalRunner) Pipe(topic string, key, value []byte, ts time.Time, headers []Header) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if g, ok := l.globalTopics[topic]; ok {
		return g.apply(key, value)
	}
	var p int32
	if key != nil {
		p = partitionFor(key, l.cfg.partitions)
	}
	r := &inRecord{topic: topic, partition: p, offset: l.nextOffset(topic, p), key: key, value: value, timestamp: ts, headers: headers}
	k := fmt.Sprintf("%s/%d", topic, p)
	l.inputs[k] = append(l.inputs[k], r)
	if l.manual {
		l.arrival = append(l.arrival, r)
	}
	l.queue = append(l.queue, copyRecord(r))
	return l.drainAndCommit()
}

// drainAndCommit processes the queue and commits if that succeeded (unless
// commits are manual).
func (l *LocalRunner) drainAndCommit() error {
	if err := l.drain(); err != nil {
		return err
	}
	if !l.manual {
		l.commit()
	}
	return nil
}

func copyRecord(r *inRecord) *inRecord {
	c := *r
	c.headers = append([]Header(nil), r.headers...)
	return &c
}

// Redeliver processes again, with their original offsets, the records piped
// to topic's partition from offset on — what Kafka does after a crash that
// happened before those offsets were committed. State that already includes
// them must not change; outputs may repeat.
func (l *LocalRunner) Redeliver(topic string, partition int32, offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	for _, r := range l.inputs[fmt.Sprintf("%s/%d", topic, partition)] {
		if r.offset >= offset {
			l.queue = append(l.queue, copyRecord(r))
		}
	}
	return l.drainAndCommit()
}

func (l *LocalRunner) nextOffset(topic string, p int32) int64 {
	k := fmt.Sprintf("%s/%d", topic, p)
	o := l.offs[k]
	l.offs[k] = o + 1
	return o
}

func (l *LocalRunner) drain() error {
	for len(l.queue) > 0 {
		r := l.queue[0]
		l.queue = l.queue[1:]
		ts := l.byTop[r.topic]
		if len(ts) == 0 {
			return l.setErr(fmt.Errorf("stream: no source reads topic %q", r.topic))
		}
		t := ts[r.partition]
		start := time.Now()
		t.mu.Lock()
		err := t.process(r)
		t.mu.Unlock()
		l.met.latency.Observe(time.Since(start).Seconds())
		l.met.recordsIn.WithLabelValues(r.topic).Inc()
		if err != nil {
			return l.setErr(err)
		}
	}
	return nil
}

func (l *LocalRunner) setErr(err error) error {
	if l.err == nil {
		l.err = err
	}
	l.queue = nil
	return err
}

// AdvanceWallClock moves the wall clock forward by d and runs the wall-clock
// punctuations that became due, in task order.
func (l *LocalRunner) AdvanceWallClock(d time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	l.clock = l.clock.Add(d)
	for _, t := range l.ordered() {
		t.mu.Lock()
		err := t.punctuate(WallClockTime, l.clock)
		t.mu.Unlock()
		if err != nil {
			return l.setErr(err)
		}
		if err := l.drain(); err != nil {
			return err
		}
	}
	if !l.manual {
		l.commit()
	}
	return nil
}

// WallClock returns the runner's current wall-clock time.
func (l *LocalRunner) WallClock() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.clock
}

// Output returns and forgets the records written so far to topic (sink and
// dead-letter topics; repartition and changelog topics are internal).
func (l *LocalRunner) Output(topic string) []RawRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.output[topic]
	delete(l.output, topic)
	return out
}

// Close closes every task's processors and stores.
func (l *LocalRunner) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, t := range l.tasks {
		errs = append(errs, t.close())
	}
	for k, b := range l.backends {
		errs = append(errs, b.Close())
		delete(l.backends, k)
	}
	return errors.Join(errs...)
}

func (l *LocalRunner) localStores(name string) ([]*storeCore, int32, error) {
	var out []*storeCore
	for _, t := range l.tasks {
		if c, ok := t.stores[name]; ok {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, 0, fmt.Errorf("%w: %q", ErrStoreNotFound, name)
	}
	return out, l.cfg.partitions, nil
}

// taskEnv implementation. Calls arrive with the task's lock held and l.mu held
// by the Pipe or AdvanceWallClock that caused them.

func (l *LocalRunner) applicationID() string { return l.cfg.appID }
func (l *LocalRunner) now() time.Time        { return l.clock }
func (l *LocalRunner) log() *slog.Logger     { return l.cfg.logger }
func (l *LocalRunner) metrics() *Metrics     { return l.met }

func (l *LocalRunner) partitions(string) (int32, error) { return l.cfg.partitions, nil }

func (l *LocalRunner) send(t *task, r *outRecord) error {
	if r.store != nil {
		if l.manual {
			k := backendKey{r.store.name, r.store.partition}
			m := l.durable[k]
			if m == nil {
				m = map[string][]byte{}
				l.durable[k] = m
			}
			m[string(r.key)] = bytes.Clone(r.value)
		}
		return nil // the in-memory store outlives the runner's tasks
	}
	p := r.partition
	if p < 0 {
		p = t.id.Partition % l.cfg.partitions
		if r.key != nil {
			p = partitionFor(r.key, l.cfg.partitions)
		}
	}
	off := l.nextOffset(r.topic, p)
	if _, internal := l.byTop[r.topic]; internal {
		in := &inRecord{topic: r.topic, partition: p, offset: off, key: r.key, value: r.value, timestamp: r.timestamp, headers: r.headers}
		if l.manual {
			l.arrival = append(l.arrival, in)
		}
		l.queue = append(l.queue, copyRecord(in))
		return nil
	}
	l.met.recordsOut.WithLabelValues(r.topic).Inc()
	l.output[r.topic] = append(l.output[r.topic], RawRecord{Topic: r.topic, Partition: p, Offset: off, Key: r.key, Value: r.value, Timestamp: r.timestamp, Headers: r.headers})
	return nil
}

func (l *LocalRunner) badRecord(t *task, r *inRecord, err error) error {
	return handleBadRecord(l, l.cfg.badAction, l.cfg.dlqTopic, t, r, err)
}

func (l *LocalRunner) openBackend(t *task, spec *storeSpec, _ string) (kv.Store, int64, error) {
	k := backendKey{spec.name, t.id.Partition}
	b, ok := l.backends[k]
	if !ok {
		b = kv.NewMemory()
		l.backends[k] = b
	}
	return b, 0, nil
}

func (l *LocalRunner) restore(*task, *storeCore) error { return nil }

// recordCache: a LocalRunner holds store writes back only in the crash
// model (CommitManually); otherwise nothing is held back.
func (l *LocalRunner) recordCache() *recordCache { return l.rc }

func (l *LocalRunner) exactlyOnce() bool { return false }

// waitStoreAcks has nothing to wait for: a LocalRunner's stores have no
// changelog.
func (l *LocalRunner) waitStoreAcks(*task, *storeCore) error { return nil }

// stillOwner: a LocalRunner owns every task.
func (l *LocalRunner) stillOwner(*task) error { return nil }
