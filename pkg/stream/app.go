package stream

// The App: construction, the sarama configuration, Run and its top-level
// loop, failure handling, and the services tasks use (producing, partition
// counts, local stores). Membership is in grouphandler.go, commits and
// transactions in commit.go, store restore in restore.go, topic creation in
// topics.go.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/semaphore"
)

// App runs a Topology over Kafka (Kafka Streams' KafkaStreams). Start as many
// instances with the same ApplicationID as you like: they form one consumer
// group and share the tasks (partitions); when one stops or dies its tasks move
// to the others, which restore the tasks' stores from their changelogs.
type App struct {
	cfg config
	top *Topology
	met *Metrics
	ran sync.Once

	// state is the App's State (state.go); stateMu orders its changes.
	state   atomic.Int32
	stateMu sync.Mutex
	// assigned is the last assignment's active partitions (under mu).
	assigned map[string][]int32

	// hosts is where every task runs, as of the last assignment (hosts.go).
	hosts hostMap
	// globals are the global tables' stores of the current run.
	globalMu sync.RWMutex
	globals  map[string]*globalStore

	mu      sync.RWMutex
	tasks   map[TaskID]*task
	byClaim map[string]map[int32]*task // resolved topic -> partition -> task
	claimMu sync.Mutex                 // not a.mu: caughtUp runs under a task lock
	claims  map[string]map[int32]*claimState
	// starting: claims whose consumeClaim began but has not registered
	// them in claims yet (unix ns), and assignedAt when the current
	// session's tasks were assigned (unix ns): checkStalls reports a task
	// whose claim does not start. Under claimMu.
	starting   map[string]map[int32]int64
	assignedAt int64
	// unclaimedWarned: partitions checkUnclaimed reported in this
	// session; metaRefreshedAt: its last metadata refresh (unix ns).
	unclaimedWarned map[string]map[int32]bool
	metaRefreshedAt int64
	cache           map[backendKey]*cachedBackend
	subParts        map[int]int32 // partitions per sub-topology
	cacheMu         sync.Mutex    // cache (after mu when both are held)
	// sess is the current consumer group session (nil between sessions),
	// for stillOwner's membership probe.
	sess atomic.Pointer[sessionRef]
	// probeMu guards probeCur, the latest membership probe (sharedProbe).
	probeMu  sync.Mutex
	probeCur *probeCall

	client sarama.Client
	// pclient is the producer's own client: its connections carry no
	// fetches, so produce requests (and the coordinator requests sent
	// through it, see coordClient) do not wait behind a fetch's long poll.
	pclient sarama.Client
	// producer writes under exactly-once, and at-least-once when the
	// configuration asks for what only sarama does (see kgoOptions) or
	// with SaramaProducer; kw writes otherwise. One of them is nil.
	producer sarama.AsyncProducer
	kw       *kgoWriter
	// sendBuf is the ProducerBufferBytes budget of the current run (nil
	// when unbounded).
	sendBuf  *semaphore.Weighted
	consumer sarama.Consumer

	partMu    sync.Mutex
	partCache map[string]int32

	failMu sync.Mutex
	err    error
	cancel context.CancelFunc

	// commitMu serialises commits (the periodic one and the one at revoke).
	commitMu sync.Mutex
	// txnDirty is set when a record was produced in the open transaction.
	txnDirty atomic.Bool
	// started is when Run began (see InputCompleteAt).
	started time.Time
	// rc is the record cache budget; nil when CacheMaxBytes is 0.
	rc *recordCache
	// life bounds the current runtime's waits (see lifecycle.go).
	life *lifecycle
	// active are the tasks this instance runs, or ran in its last session
	// (eager protocol), for the assignor's stickiness (under mu).
	active map[TaskID]bool
	// ownedGen is the group generation of the last assignment received.
	ownedGen atomic.Int32
	// building are the tasks being created after a cooperative rebalance
	// (under mu; see addTask).
	building map[TaskID]*taskBuild
	// sb are the standby tasks (see standby.go).
	sb standbys
	// hwmInFlight: brokers with an unanswered high watermark request (see
	// refreshHighWatermarks).
	hwmMu       sync.Mutex
	hwmInFlight map[int32]bool
}

// ackCtx travels with each produced message to account for it on ack.
type ackCtx struct {
	t     *task
	store *storeCore
	topic string
	// buf and weight: the ProducerBufferBytes budget the record holds
	// until its acknowledgement (nil when unbounded).
	buf    *semaphore.Weighted
	weight int64
}

// release returns the record's share of the producer buffer.
func (ac *ackCtx) release() {
	if ac.buf != nil {
		ac.buf.Release(ac.weight)
	}
}

// recordOverhead is what a produced record costs beyond its key, value and
// headers (sarama's message struct, batch framing), for ProducerBufferBytes.
const recordOverhead = 128

// NewApp prepares an App; nothing connects until Run.
func NewApp(top *Topology, opts ...Opt) (*App, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(true); err != nil {
		return nil, err
	}
	if top == nil {
		return nil, errNilTopology
	}
	if cfg.stateDir == "" {
		cfg.stateDir = filepath.Join(os.TempDir(), "stream-state")
	}
	a := &App{
		cfg: cfg, top: top,
		tasks: map[TaskID]*task{}, byClaim: map[string]map[int32]*task{},
		active: map[TaskID]bool{}, building: map[TaskID]*taskBuild{},
		sb:    standbys{running: map[TaskID]*standbyTask{}},
		cache: map[backendKey]*cachedBackend{}, partCache: map[string]int32{},
		subParts: map[int]int32{},
	}
	if cfg.cacheMaxBytes > 0 {
		a.rc = &recordCache{max: cfg.cacheMaxBytes}
	}
	a.met = newMetrics(cfg.appID, a.storeSizes)
	return a, nil
}

// Collector returns the application's Prometheus metrics, to register with a
// registry of your choice.
func (a *App) Collector() prometheus.Collector { return a.met }

// restoreFetchBytes is how much the restore consumer asks for per partition
// and fetch (sarama's and the Java consumer's default: 1 MiB). A restore of
// 1,000,000 changelog records took 1.66-1.69 s with 4 MiB against 2.03-2.27 s
// with 1 MiB (bench-scale's restore run, alternating).
const restoreFetchBytes = 4 << 20

func (a *App) saramaConfig() *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.ClientID = a.cfg.appID
	a.cfg.group.apply(sc)
	if a.cfg.sarama != nil {
		a.cfg.sarama(sc)
	}
	// What the guarantees rest on is not negotiable.
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	// Ride out a broker restart (tens of seconds) instead of failing: a
	// produce error fails the runtime (see RestartOnFailure). Retries cannot
	// reorder or duplicate records because the producer is idempotent.
	if n := a.cfg.producerRetries; n > 0 {
		sc.Producer.Retry.Max = n
		sc.Producer.Retry.Backoff = 100 * time.Millisecond
	} else if sc.Producer.Retry.Max < 240 {
		sc.Producer.Retry.Max = 240
		sc.Producer.Retry.Backoff = 250 * time.Millisecond
	}
	if sc.Metadata.Retry.Max < 60 {
		sc.Metadata.Retry.Max = 60
		sc.Metadata.Retry.Backoff = 500 * time.Millisecond
	}
	sc.Producer.Flush.Frequency = 2 * time.Millisecond
	sc.Producer.Flush.Bytes = 1 << 20
	if a.cfg.exactlyOnce {
		sc.Producer.Transaction.ID = a.cfg.appID + "-" + randomID()
		// A crashed instance's open transaction blocks read_committed readers
		// until it times out (the restarted instance has a new transactional
		// id), so keep the timeout short: two commit intervals plus margin.
		sc.Producer.Transaction.Timeout = 2*a.cfg.commitInterval + 5*time.Second
	}
	if sc.Consumer.MaxWaitTime == 500*time.Millisecond {
		// Short fetch waits: lower latency, and restores can tell an empty
		// tail quickly (see restore).
		sc.Consumer.MaxWaitTime = 100 * time.Millisecond
	}
	// sarama fetches again only once every message of the last response sits
	// in a partition's channel; a channel that holds a whole fetch (1 MiB of
	// small records) keeps the next fetch in flight while tasks process,
	// instead of idling for a round trip per 256 records. Unless the
	// application chose its own size.
	if sc.ChannelBufferSize == 256 {
		sc.ChannelBufferSize = 16 << 10
	}
	sc.Consumer.Offsets.AutoCommit.Enable = false
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	sc.Consumer.Return.Errors = true
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{&taskBalancer{a: a}}
	return sc
}

// Run processes until ctx is cancelled or a fatal error happens. On
// cancellation it commits what was processed (after Kafka acknowledged the
// records it produced), leaves the group and returns nil. An App runs once.
//
// Run returns promptly once ctx ends: at once during the group join or
// while stores restore, and after at most [ShutdownTimeout] (default 8 s)
// while processing, when the brokers cannot be reached for the final
// commit. A runtime failure restarts the runtime after a backoff (see
// [RestartOnFailure]); Run returns the error after repeated quick failures.
func (a *App) Run(ctx context.Context) error {
	err := ErrClosed
	a.ran.Do(func() { err = a.runWithRestarts(ctx) })
	return err
}

func (a *App) run(parent context.Context) error {
	a.started = time.Now()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	a.cancel = cancel
	// Every wait below ends with ctx, and the shutdown after it with the
	// deadline (ShutdownTimeout). Blocking sarama calls that outlast it go
	// on in the background (life.leftovers) and clean up after themselves.
	life := newLifecycle(ctx, a.cfg.shutdownBudget())
	a.life = life
	stopShutdown := context.AfterFunc(ctx, life.startShutdown)
	defer stopShutdown()
	log := a.cfg.logger.With("application_id", a.cfg.appID)
	var closers []func() error // closed last to first once the group is done
	// finish closes what was opened, waiting at most wait for it.
	finish := func(wait time.Duration) {
		done := make(chan struct{})
		life.bg.Add(1)
		go func() {
			defer life.bg.Done()
			defer close(done)
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}()
		select {
		case <-done:
		case <-time.After(wait):
		}
	}
	// An error while ctx ends is the cancellation, not a failure.
	early := func(err error) error {
		finish(joinGrace)
		if ferr := a.failure(); ferr != nil || ctx.Err() != nil {
			return ferr
		}
		return err
	}
	sc := a.saramaConfig()
	client, err := await(life, ctx, func() (sarama.Client, error) { return sarama.NewClient(a.cfg.brokers, sc) },
		func(c sarama.Client) { _ = c.Close() })
	if err != nil {
		return early(fmt.Errorf("stream: connect to %v: %w", a.cfg.brokers, err))
	}
	a.client = client
	closers = append(closers, client.Close)
	topics, err := await(life, ctx, func() ([]string, error) { return a.prepareTopics(sc) }, nil)
	if err != nil {
		return early(err)
	}
	// Restores, standbys and global tables read with a client of their own,
	// as Kafka Streams has a restore consumer: their fetches do not queue
	// behind the group consumer's long polls on the same connection, and
	// they fetch more per partition (restoreFetchBytes) unless the
	// application set its own size.
	// A copy of the same configuration (the application's callback is not
	// run again; the clients share its pointers, as the other clients do).
	rsc := *sc
	if rsc.Consumer.Fetch.Default == sarama.NewConfig().Consumer.Fetch.Default {
		rsc.Consumer.Fetch.Default = restoreFetchBytes
	}
	rclient, err := await(life, ctx, func() (sarama.Client, error) { return sarama.NewClient(a.cfg.brokers, &rsc) },
		func(c sarama.Client) { _ = c.Close() })
	if err != nil {
		return early(fmt.Errorf("stream: connect the restore consumer to %v: %w", a.cfg.brokers, err))
	}
	closers = append(closers, rclient.Close)
	consumer, err := sarama.NewConsumerFromClient(rclient)
	if err != nil {
		return early(fmt.Errorf("stream: restore consumer: %w", err))
	}
	a.consumer = consumer
	closers = append(closers, consumer.Close)
	// The producer gets a client of its own: Kafka answers a connection's
	// requests one at a time, in order, so on the consumer's connections a
	// produce request (a changelog write, a result) waited behind the
	// fetch long-polling there, up to Consumer.MaxWaitTime.
	pclient, err := await(life, ctx, func() (sarama.Client, error) { return sarama.NewClient(a.cfg.brokers, sc) },
		func(c sarama.Client) { _ = c.Close() })
	if err != nil {
		return early(fmt.Errorf("stream: connect the producer to %v: %w", a.cfg.brokers, err))
	}
	a.pclient = pclient
	closers = append(closers, pclient.Close)
	a.producer, a.kw = nil, nil
	// closeProducer is sarama's AsyncClose for either writer; acksDone
	// closes once every record handed to it is acknowledged or failed.
	var closeProducer func()
	var producer sarama.AsyncProducer // under exactly-once, for the teardown's abort
	acksDone := make(chan struct{})
	kopts, why := kgoOptions(a.cfg.brokers, sc)
	kopts = append(kopts, kgo.WithLogger(kgoLogger{a.cfg.logger.With(slog.String("application_id", a.cfg.appID), slog.String("client", "franz-go"))}))
	if !a.cfg.exactlyOnce && !a.cfg.saramaProducer && why == "" {
		kw, err := await(life, ctx, func() (*kgoWriter, error) { return newKGOWriter(kopts, a.acked) },
			func(w *kgoWriter) { w.close() })
		if err != nil {
			return early(fmt.Errorf("stream: producer: %w", err))
		}
		a.kw = kw
		closeProducer = kw.close
		go func() { <-kw.done; close(acksDone) }()
	} else {
		if why != "" && !a.cfg.exactlyOnce {
			log.Info("writing through sarama's producer", slog.String("because", why))
		}
		p, err := await(life, ctx, func() (sarama.AsyncProducer, error) { return sarama.NewAsyncProducerFromClient(pclient) },
			func(p sarama.AsyncProducer) { p.AsyncClose() })
		if err != nil {
			return early(fmt.Errorf("stream: producer: %w", err))
		}
		producer, a.producer = p, p
		closeProducer = producer.AsyncClose
		if a.cfg.exactlyOnce {
			if err := producer.BeginTxn(); err != nil {
				producer.AsyncClose()
				return early(fmt.Errorf("stream: begin transaction: %w", err))
			}
		}
		go a.handleAcks(acksDone)
	}
	a.sendBuf = nil
	// Not under transactions yet: with a one-byte budget a transactional
	// produce failed with INVALID_TXN_STATE in 1 of 8 runs on a loaded
	// machine (embedded broker), cause not found.
	if a.cfg.bufferBytes > 0 && !a.cfg.exactlyOnce {
		a.sendBuf = semaphore.NewWeighted(a.cfg.bufferBytes)
	}
	// Global tables are read to their end before any task starts.
	closers = append(closers, func() error { a.closeGlobals(); return nil })
	if err := a.startGlobals(ctx); err != nil {
		closeProducer()
		closers = append(closers, func() error { <-acksDone; return nil })
		return early(err)
	}
	// The group's own requests to its coordinator (JoinGroup, SyncGroup,
	// heartbeats, sarama's offset fetches) get a client of their own, as the
	// Java consumer keeps a separate connection to the coordinator: a
	// JoinGroup waits at the coordinator until the rebalance's join phase
	// ends — up to the session timeout of a member that died — and Kafka
	// answers a connection's requests one at a time, so on the consumer's
	// connections every fetch, restore and high-watermark request to that
	// broker waited behind it, and tasks that keep their partitions stalled
	// for the whole rebalance.
	gclient, err := await(life, ctx, func() (sarama.Client, error) { return sarama.NewClient(a.cfg.brokers, sc) },
		func(c sarama.Client) { _ = c.Close() })
	if err != nil {
		closeProducer()
		closers = append(closers, func() error { <-acksDone; return nil })
		return early(fmt.Errorf("stream: connect the group coordinator's client to %v: %w", a.cfg.brokers, err))
	}
	closers = append(closers, gclient.Close)
	group, err := sarama.NewConsumerGroupFromClient(a.cfg.appID, coordinatorSplit{Client: client, coord: gclient})
	if err != nil {
		closeProducer()
		closers = append(closers, func() error { <-acksDone; return nil })
		return early(fmt.Errorf("stream: consumer group: %w", err))
	}
	go func() {
		for err := range group.Errors() {
			log.Warn("consumer group error", slog.Any("err", err))
		}
	}()
	log.Info("stream application started", slog.Any("topics", topics), slog.Int("subtopologies", len(a.top.subs)))
	consumeDone := make(chan struct{})
	life.bg.Add(1)
	go func() {
		defer life.bg.Done()
		defer close(consumeDone)
		for ctx.Err() == nil {
			if err := group.Consume(ctx, topics, (*groupHandler)(a)); err != nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
					break
				}
				if ferr := fatalGroupError(err, a.cfg.group); ferr != nil {
					a.fail(ferr)
					break
				}
				log.Warn("consume session ended", slog.Any("err", err))
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		}
	}()
	select {
	case <-ctx.Done():
	case <-consumeDone:
	}
	life.startShutdown()
	// The rest of the shutdown: the session's Cleanup (final commit and
	// hand-over) ends Consume, then the group is left and the clients
	// closed. Each step may block on an unreachable broker, so it runs in
	// the background and Run waits for it only as long as is useful.
	var gerr error
	teardown := make(chan struct{})
	life.bg.Add(1)
	go func() {
		defer life.bg.Done()
		defer close(teardown)
		<-consumeDone
		gerr = group.Close()
		if a.cfg.exactlyOnce && producer.TxnStatus()&sarama.ProducerTxnFlagInTransaction != 0 {
			// Whatever was not committed at revoke is dropped, never half-visible.
			_ = producer.AbortTxn()
		}
		closeProducer()
		<-acksDone
		a.closeBackends()
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
	}()
	// While processing, wait for the final commit up to the deadline. A
	// join or a task setup has nothing to commit: restores stop at once,
	// and a join still under way is left to finish in the background.
	var grace <-chan time.Time
	switch life.phase.Load() {
	case phaseJoining:
		grace = time.After(joinGrace)
	case phaseSetup:
		grace = time.After(setupGrace)
	}
	select {
	case <-teardown:
	case <-life.expired:
		log.Warn("shutdown deadline passed; unacknowledged output stays uncommitted and the rest closes in the background",
			slog.Duration("shutdown_timeout", life.budget))
		if err := a.failure(); err != nil {
			return err
		}
		return fmt.Errorf("stream: shutdown: %w", errShutdownDeadline)
	case <-grace:
		return a.failure()
	}
	if err := a.failure(); err != nil {
		return err
	}
	if gerr != nil {
		return fmt.Errorf("stream: leave group: %w", gerr)
	}
	log.Info("stream application stopped")
	return nil
}

// How long Run waits for the shutdown when its context ends during the
// group join or the tasks' setup (restores), where nothing is committed.
const (
	joinGrace  = 300 * time.Millisecond
	setupGrace = 700 * time.Millisecond
)

func (a *App) fail(err error) {
	a.failMu.Lock()
	if a.err == nil {
		a.err = err
		a.cfg.logger.Error("stream application failed", slog.String("application_id", a.cfg.appID), slog.Any("err", err))
	}
	a.failMu.Unlock()
	if a.cancel != nil {
		a.cancel()
	}
}

func (a *App) failure() error {
	a.failMu.Lock()
	defer a.failMu.Unlock()
	return a.err
}

func (a *App) handleAcks(done chan struct{}) {
	defer close(done)
	succ, errs := a.producer.Successes(), a.producer.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			a.acked(m.Metadata.(*ackCtx), m.Offset, nil)
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			a.acked(pe.Msg.Metadata.(*ackCtx), -1, pe.Err)
		}
	}
}

// acked accounts for one written record: its offset in the topic, or the
// error that failed it after the producer's retries, which fails the
// runtime (Run restarts it, see RestartOnFailure).
func (a *App) acked(ac *ackCtx, offset int64, err error) {
	ac.release()
	if err != nil {
		a.fail(fmt.Errorf("stream: produce to %s failed, records could be lost so the application stops: %w", ac.topic, err))
		if ac.store != nil {
			ac.store.inflight.Done()
		}
		ac.t.pending.Done()
		return
	}
	if ac.store != nil {
		ac.store.acked(offset)
		ac.store.inflight.Done()
	} else {
		a.met.recordsOut.WithLabelValues(ac.topic).Inc()
	}
	ac.t.pending.Done()
}

// taskEnv implementation.

func (a *App) applicationID() string { return a.cfg.appID }
func (a *App) now() time.Time        { return time.Now() }
func (a *App) log() *slog.Logger     { return a.cfg.logger.With("application_id", a.cfg.appID) }
func (a *App) metrics() *Metrics     { return a.met }

func (a *App) recordCache() *recordCache { return a.rc }
func (a *App) exactlyOnce() bool         { return a.cfg.exactlyOnce }

func (a *App) partitions(topic string) (int32, error) {
	a.partMu.Lock()
	defer a.partMu.Unlock()
	if n, ok := a.partCache[topic]; ok {
		return n, nil
	}
	parts, err := a.client.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("stream: partitions of %s: %w", topic, err)
	}
	a.partCache[topic] = int32(len(parts))
	return int32(len(parts)), nil
}

func (a *App) send(t *task, r *outRecord) error {
	p := r.partition
	if p < 0 {
		n, err := a.partitions(r.topic)
		if err != nil {
			return err
		}
		p = t.id.Partition % n
		if r.key != nil {
			p = partitionFor(r.key, n)
		}
	}
	ac := &ackCtx{t: t, store: r.store, topic: r.topic}
	if buf := a.sendBuf; buf != nil {
		w := int64(len(r.key) + len(r.value) + recordOverhead)
		for _, h := range r.headers {
			w += int64(len(h.Key) + len(h.Value))
		}
		// Acknowledgements (or errors) always come: the producer returns
		// every record it was given. Waiting here is the back-pressure.
		w = min(w, a.cfg.bufferBytes)
		if err := buf.Acquire(context.Background(), w); err != nil {
			return err
		}
		ac.buf, ac.weight = buf, w
	}
	t.pending.Add(1)
	if r.store != nil {
		r.store.inflight.Add(1)
	}
	if a.kw != nil {
		kr := &kgo.Record{Topic: r.topic, Partition: p, Timestamp: r.timestamp, Key: r.key, Value: r.value}
		if len(r.headers) > 0 {
			kr.Headers = make([]kgo.RecordHeader, len(r.headers))
			for i, h := range r.headers {
				kr.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
			}
		}
		a.kw.write(kr, ac)
		return nil
	}
	m := &sarama.ProducerMessage{Topic: r.topic, Partition: p, Timestamp: r.timestamp, Metadata: ac}
	if r.key != nil {
		m.Key = sarama.ByteEncoder(r.key)
	}
	if r.value != nil {
		m.Value = sarama.ByteEncoder(r.value)
	}
	for _, h := range r.headers {
		m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
	}
	if a.cfg.exactlyOnce {
		a.txnDirty.Store(true)
	}
	a.producer.Input() <- m
	return nil
}

func (a *App) badRecord(t *task, r *inRecord, err error) error {
	return handleBadRecord(a, a.cfg.badAction, a.cfg.dlqTopic, t, r, err)
}

func (a *App) localStores(name string) ([]*storeCore, int32, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []*storeCore
	var n int32
	for _, t := range a.tasks {
		if c, ok := t.stores[name]; ok && !c.closed.Load() {
			out = append(out, c)
			n = a.subParts[t.id.Subtopology]
		}
	}
	if _, ok := a.top.stores[name]; !ok {
		return nil, 0, fmt.Errorf("%w: %q", ErrStoreNotFound, name)
	}
	if n == 0 {
		n = 1
	}
	return out, n, nil
}

func (a *App) storeSizes() map[string]int64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := map[string]int64{}
	for _, t := range a.tasks {
		for name, c := range t.stores {
			if !c.closed.Load() {
				out[name] += c.backend.ApproximateLen()
			}
		}
	}
	return out
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
