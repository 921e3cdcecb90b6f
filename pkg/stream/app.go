package stream

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emostream/emostream/pkg/stream/internal/kv"
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

	mu       sync.RWMutex
	tasks    map[TaskID]*task
	byClaim  map[string]map[int32]*task // resolved topic -> partition -> task
	claimMu  sync.Mutex                 // not a.mu: caughtUp runs under a task lock
	claims   map[string]map[int32]*claimState
	cache    map[backendKey]*cachedBackend
	subParts map[int]int32 // partitions per sub-topology
	cacheMu  sync.Mutex    // cache (after mu when both are held)

	client   sarama.Client
	producer sarama.AsyncProducer
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

type backendKey struct {
	store     string
	partition int32
}

type cachedBackend struct {
	b          kv.Store
	restoredTo int64
}

// ackCtx travels with each produced message to account for it on ack.
type ackCtx struct {
	t     *task
	store *storeCore
	topic string
}

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
	// produce error stops the application. Retries cannot reorder or
	// duplicate records because the producer is idempotent.
	if sc.Producer.Retry.Max < 240 {
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
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return early(fmt.Errorf("stream: restore consumer: %w", err))
	}
	a.consumer = consumer
	closers = append(closers, consumer.Close)
	producer, err := await(life, ctx, func() (sarama.AsyncProducer, error) { return sarama.NewAsyncProducerFromClient(client) },
		func(p sarama.AsyncProducer) { p.AsyncClose() })
	if err != nil {
		return early(fmt.Errorf("stream: producer: %w", err))
	}
	a.producer = producer
	if a.cfg.exactlyOnce {
		if err := producer.BeginTxn(); err != nil {
			producer.AsyncClose()
			return early(fmt.Errorf("stream: begin transaction: %w", err))
		}
	}
	acksDone := make(chan struct{})
	go a.handleAcks(acksDone)
	group, err := sarama.NewConsumerGroupFromClient(a.cfg.appID, client)
	if err != nil {
		producer.AsyncClose()
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
		producer.AsyncClose()
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
			ac := m.Metadata.(*ackCtx)
			if ac.store != nil {
				ac.store.acked(m.Offset)
			} else {
				a.met.recordsOut.WithLabelValues(ac.topic).Inc()
			}
			ac.t.pending.Done()
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			a.fail(fmt.Errorf("stream: produce to %s failed, records could be lost so the application stops: %w", pe.Msg.Topic, pe.Err))
			pe.Msg.Metadata.(*ackCtx).t.pending.Done()
		}
	}
}

// prepareTopics checks the source topics, creates the internal ones and
// returns every topic the group consumes.
func (a *App) prepareTopics(sc *sarama.Config) ([]string, error) {
	admin, err := sarama.NewClusterAdmin(a.cfg.brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("stream: admin client: %w", err)
	}
	defer admin.Close()
	internalParts := map[string]int32{}
	var topics []string
	for _, st := range a.top.subs {
		var n int32
		for _, s := range st.sources {
			topic := resolveTopic(a.cfg.appID, s)
			topics = append(topics, topic)
			var p int32
			if s.internal {
				p = internalParts[topic]
			} else {
				parts, err := a.client.Partitions(topic)
				if err != nil {
					return nil, fmt.Errorf("stream: source topic %s: %w", topic, err)
				}
				p = int32(len(parts))
			}
			if n != 0 && p != n && !s.internal {
				return nil, fmt.Errorf("%w: sub-topology %d reads topics with different partition counts (%s has %d, others %d); they must be co-partitioned", ErrInvalidTopology, st.id, topic, p, n)
			}
			if p > n {
				n = p
			}
		}
		a.subParts[st.id] = n
		for _, nd := range st.nodes {
			if nd.kind == kindSink && nd.internal {
				internalParts[resolveTopic(a.cfg.appID, nd)] = n
			}
		}
		for _, store := range st.stores {
			if err := a.ensureTopic(admin, a.top.changelogTopic(a.cfg.appID, store), n, true); err != nil {
				return nil, err
			}
		}
	}
	for topic, n := range internalParts {
		if err := a.ensureTopic(admin, topic, n, false); err != nil {
			return nil, err
		}
	}
	if a.cfg.badAction == SendToDeadLetter {
		if err := a.ensureTopic(admin, a.cfg.dlqTopic, a.subParts[0], false); err != nil {
			return nil, err
		}
	}
	if err := a.client.RefreshMetadata(); err != nil {
		return nil, err
	}
	return topics, nil
}

func (a *App) ensureTopic(admin sarama.ClusterAdmin, topic string, partitions int32, compact bool) error {
	rf, minISR := a.cfg.topicReplication(len(a.client.Brokers()))
	detail := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: rf, ConfigEntries: map[string]*string{}}
	replicationConfig(detail.ConfigEntries, minISR)
	if compact {
		c := "compact"
		detail.ConfigEntries["cleanup.policy"] = &c
	}
	err := admin.CreateTopic(topic, detail, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		var te *sarama.TopicError
		if !errors.As(err, &te) || te.Err != sarama.ErrTopicAlreadyExists {
			return fmt.Errorf("stream: create topic %s: %w", topic, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_ = a.client.RefreshMetadata(topic)
		parts, err := a.client.Partitions(topic)
		if err == nil && int32(len(parts)) == partitions {
			// Every partition must have a leader before tasks read or write it.
			for _, p := range parts {
				if _, err = a.client.Leader(topic, p); err != nil {
					break
				}
			}
			if err == nil {
				return nil
			}
		}
		if err == nil && int32(len(parts)) != partitions && len(parts) > 0 {
			return fmt.Errorf("%w: topic %s has %d partitions, the topology needs %d", ErrInvalidTopology, topic, len(parts), partitions)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stream: topic %s not visible after creation: %w", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// setup builds the tasks of the new assignment (consumer group callback,
// through groupHandler).
func (a *App) setup(sess sarama.ConsumerGroupSession) error {
	if err := a.life.ctx.Err(); err != nil {
		return err // shutting down: no new tasks
	}
	a.life.phase.Store(phaseSetup)
	claims := sess.Claims()
	// The committed offsets' metadata carries each task's last commit epoch
	// and stream time, which the tasks restore before their processors'
	// Init. Without them a task cannot tell what its predecessor delivered:
	// retry the session rather than guess.
	committed, err := a.fetchCommitted(sess.Context(), claims)
	if err != nil {
		if sess.Context().Err() == nil {
			a.cfg.logger.Warn("fetching committed offsets failed", slog.String("application_id", a.cfg.appID), slog.Any("err", err))
		}
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	assigned := map[backendKey]bool{}
	for _, st := range a.top.subs {
		first := resolveTopic(a.cfg.appID, st.sources[0])
		for _, p := range claims[first] {
			for _, s := range st.stores {
				assigned[backendKey{s, p}] = true
			}
		}
	}
	// Memory stores of tasks that moved away are stale now; drop them.
	a.cacheMu.Lock()
	for k, c := range a.cache {
		if !assigned[k] {
			_ = c.b.Close()
			delete(a.cache, k)
		}
	}
	a.cacheMu.Unlock()
	// The tasks are built — their stores restored — at the same time: a
	// failover's restores then take about as long as the slowest one.
	type build struct {
		st  *subtopology
		p   int32
		t   *task
		err error
	}
	var builds []*build
	var wg sync.WaitGroup
	for _, st := range a.top.subs {
		first := resolveTopic(a.cfg.appID, st.sources[0])
		for _, p := range claims[first] {
			start := taskStart{committed: map[string]committedPosition{}, started: a.started}
			for _, src := range st.sources {
				topic := resolveTopic(a.cfg.appID, src)
				if cp, ok := committed[topic][p]; ok {
					start.committed[topic] = cp
				}
			}
			b := &build{st: st, p: p}
			builds = append(builds, b)
			wg.Go(func() { b.t, b.err = newTask(a.top, b.st, b.p, a, start) })
		}
	}
	wg.Wait()
	clear(a.active)
	var buildErr error
	for _, b := range builds {
		st, p, t := b.st, b.p, b.t
		if b.err != nil {
			buildErr = cmp.Or(buildErr, b.err)
			continue
		}
		a.tasks[t.id] = t
		a.active[t.id] = true
		for _, s := range st.sources {
			topic := resolveTopic(a.cfg.appID, s)
			if a.byClaim[topic] == nil {
				a.byClaim[topic] = map[int32]*task{}
			}
			a.byClaim[topic][p] = t
		}
		t.caughtUp = func() (bool, time.Time) { return a.caughtUp(t) }
	}
	if buildErr != nil {
		// The tasks built are closed by Cleanup.
		if a.life.ctx.Err() == nil {
			a.fail(buildErr)
		}
		return buildErr
	}
	a.cfg.logger.Info("tasks assigned", slog.String("application_id", a.cfg.appID), slog.Int("tasks", len(a.tasks)), slog.Int("generation", int(sess.GenerationID())))
	a.life.phase.Store(phaseProcessing)
	a.life.bg.Add(1)
	go func() {
		defer a.life.bg.Done()
		a.sessionLoops(sess)
	}()
	return nil
}

// sessionLoops commits periodically and runs wall-clock punctuations until
// the session ends.
func (a *App) sessionLoops(sess sarama.ConsumerGroupSession) {
	commit := time.NewTicker(a.cfg.commitInterval)
	defer commit.Stop()
	wall := time.NewTicker(a.cfg.wallClockInterval)
	defer wall.Stop()
	hwm := time.NewTicker(hwmRefreshInterval)
	defer hwm.Stop()
	for {
		select {
		case <-sess.Context().Done():
			return
		case <-hwm.C:
			a.refreshHighWatermarks()
		case <-commit.C:
			a.commit(sess)
		case <-wall.C:
			a.mu.RLock()
			tasks := make([]*task, 0, len(a.tasks))
			for _, t := range a.tasks {
				tasks = append(tasks, t)
			}
			a.mu.RUnlock()
			now := time.Now()
			for _, t := range tasks {
				t.mu.Lock()
				err := t.punctuate(WallClockTime, now)
				t.mu.Unlock()
				if err != nil {
					a.fail(err)
					return
				}
			}
		}
	}
}

// commit waits until everything each task produced is acknowledged, then
// commits the task's offsets with metadata recording its commit epoch and
// stream time. Offsets are never committed ahead of the output (and
// changelog writes) of the records they cover.
func (a *App) commit(sess sarama.ConsumerGroupSession) {
	if a.failure() != nil {
		return
	}
	a.commitMu.Lock()
	defer a.commitMu.Unlock()
	a.mu.RLock()
	tasks := make([]*task, 0, len(a.tasks))
	for _, t := range a.tasks {
		tasks = append(tasks, t)
	}
	a.mu.RUnlock()
	if a.cfg.exactlyOnce {
		a.commitTxn(sess, tasks)
		return
	}
	a.commitTasks(sess, tasks)
}

// commitTasks commits the tasks' offsets (at-least-once mode). The caller
// holds commitMu.
func (a *App) commitTasks(sess sarama.ConsumerGroupSession, tasks []*task) {
	var commits []*offsetCommit
	for _, t := range tasks {
		t.mu.Lock()
		t.flushStores()
		a.waitAcks(t)
		if a.failure() == nil {
			if c := a.prepareCommit(t); c != nil {
				// What the task does from now on, while the commit is on its
				// way, belongs to the next epoch: this commit does not cover
				// it. (If the commit fails, the next one covers both.)
				if c.advance {
					t.advanceEpoch(c.epoch)
				}
				commits = append(commits, c)
			}
		}
		t.mu.Unlock()
	}
	if len(commits) > 0 && a.failure() == nil {
		a.commitOffsets(sess, commits)
	}
}

// offsetCommit is what one task commits: the offsets of its source
// partitions, with the metadata recording its commit epoch and stream time.
type offsetCommit struct {
	t       *task
	offsets map[string]int64 // resolved topic -> next offset
	meta    string
	epoch   uint64
	advance bool // the commit covers the task's current epoch
	st      time.Time
}

// prepareCommit returns what t's next commit must write — every source
// partition whose offset or metadata differs from its last commit — or nil
// when nothing does. The metadata is committed even when no offset moved
// (say, windows closed by the wall clock in a task that has read nothing).
// The caller holds t.mu.
func (a *App) prepareCommit(t *task) *offsetCommit {
	meta, epoch, advance := t.commitMeta()
	c := &offsetCommit{t: t, meta: meta, epoch: epoch, advance: advance, st: t.streamTime, offsets: map[string]int64{}}
	for topic := range t.sources {
		if _, processed := t.position[topic]; !processed && !advance {
			continue // neither its offset nor the task's epoch moved
		}
		off, ok := a.commitOffset(t, topic)
		if !ok {
			continue
		}
		if cp, ok := t.committed[topic]; ok && cp.offset == off && cp.meta == meta {
			continue
		}
		c.offsets[topic] = off
	}
	if len(c.offsets) == 0 {
		return nil
	}
	return c
}

// commitOffset is the offset to commit for t's source topic: the next one
// to process, or — when the task has processed nothing from it — the
// committed offset fetched when the task was created, or where its claim
// started. The caller holds t.mu.
func (a *App) commitOffset(t *task, topic string) (int64, bool) {
	if off, ok := t.position[topic]; ok {
		return off, true
	}
	if cp, ok := t.committed[topic]; ok && cp.offset >= 0 {
		return cp.offset, true
	}
	a.claimMu.Lock()
	cs := a.claims[topic][t.id.Partition]
	a.claimMu.Unlock()
	if cs != nil && cs.start >= 0 {
		return cs.start, true
	}
	// No committed offset: consumption starts at the oldest one.
	off, err := a.client.GetOffset(topic, t.id.Partition, sarama.OffsetOldest)
	return off, err == nil && off >= 0
}

// commitOffsets sends one OffsetCommit request for the tasks' offsets to the
// group coordinator (with the session's generation and member id) and, for
// each task all of whose partitions were committed, records the commit and
// its epoch. A failed commit is logged; the next one writes the same
// partitions again with newer metadata.
//
// The request is sent directly rather than with the session's
// MarkOffset/Commit, whose outcome is only reported on the group's error
// channel: a task's epoch counts as committed only once Kafka said so.
func (a *App) commitOffsets(sess sarama.ConsumerGroupSession, commits []*offsetCommit) {
	req := a.offsetCommitRequest(sess)
	var ts int64
	if req.Version == 1 {
		ts = sarama.ReceiveTime
	}
	for _, c := range commits {
		for topic, off := range c.offsets {
			req.AddBlockWithLeaderEpoch(topic, c.t.id.Partition, off, -1, ts, c.meta)
		}
	}
	// An unreachable coordinator must not hold a shutdown past its
	// deadline: a commit still on its way then counts as failed.
	var resp *sarama.OffsetCommitResponse
	err := a.life.bounded(func() error {
		var r *sarama.OffsetCommitResponse
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if attempt > 0 {
				time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
			}
			var broker *sarama.Broker
			if broker, err = a.client.Coordinator(a.cfg.appID); err == nil {
				r, err = broker.CommitOffset(req)
			}
			if err == nil {
				err = coordinatorError(r)
			}
			if err == nil {
				resp = r
				return nil
			}
			_ = a.client.RefreshCoordinator(a.cfg.appID)
		}
		return err
	})
	if err != nil {
		a.cfg.logger.Warn("offset commit failed", slog.String("application_id", a.cfg.appID), slog.Any("err", err))
		return
	}
	var failed error
	for _, c := range commits {
		ok := true
		c.t.mu.Lock()
		for topic, off := range c.offsets {
			var perr error = sarama.ErrIncompleteResponse
			if kerr, found := resp.Errors[topic][c.t.id.Partition]; found && kerr != sarama.ErrNoError {
				perr = kerr
			} else if found {
				perr = nil
			}
			if perr != nil {
				ok = false
				if failed == nil {
					failed = fmt.Errorf("%s/%d: %w", topic, c.t.id.Partition, perr)
				}
				continue
			}
			c.t.committed[topic] = committedPosition{offset: off, meta: c.meta}
		}
		if ok && c.advance {
			c.t.epochCommitted(c.epoch, c.st)
		}
		c.t.mu.Unlock()
	}
	if failed != nil {
		level := slog.LevelWarn
		if a.cooperative() && (errors.Is(failed, sarama.ErrIllegalGeneration) || errors.Is(failed, sarama.ErrRebalanceInProgress)) {
			// The periodic commit of tasks that keep running while the
			// group rebalances: the next one, in the new generation,
			// covers it.
			level = slog.LevelDebug
		}
		a.cfg.logger.Log(context.Background(), level, "offset commit failed", slog.String("application_id", a.cfg.appID), slog.Any("err", failed))
	}
}

// coordinatorError returns the first error of resp that asks to find the
// coordinator again and retry.
func coordinatorError(resp *sarama.OffsetCommitResponse) error {
	for _, parts := range resp.Errors {
		for _, kerr := range parts {
			switch kerr {
			case sarama.ErrNotCoordinatorForConsumer, sarama.ErrConsumerCoordinatorNotAvailable, sarama.ErrOffsetsLoadInProgress, sarama.ErrRequestTimedOut:
				return kerr
			}
		}
	}
	return nil
}

// offsetCommitRequest is an empty OffsetCommit request for the session, in
// the version sarama's own offset manager would use.
func (a *App) offsetCommitRequest(sess sarama.ConsumerGroupSession) *sarama.OffsetCommitRequest {
	conf := a.client.Config()
	req := &sarama.OffsetCommitRequest{
		Version:                 1,
		ConsumerGroup:           a.cfg.appID,
		ConsumerGroupGeneration: sess.GenerationID(),
		ConsumerID:              sess.MemberID(),
	}
	v := conf.Version
	switch {
	case v.IsAtLeast(sarama.V2_4_0_0):
		req.Version = 8
	case v.IsAtLeast(sarama.V2_3_0_0):
		req.Version = 7
	case v.IsAtLeast(sarama.V2_1_0_0):
		req.Version = 6
	case v.IsAtLeast(sarama.V2_0_0_0):
		req.Version = 4
	case v.IsAtLeast(sarama.V0_11_0_0):
		req.Version = 3
	case v.IsAtLeast(sarama.V0_9_0_0):
		req.Version = 2
	}
	if req.Version >= 7 && conf.Consumer.Group.InstanceId != "" {
		id := conf.Consumer.Group.InstanceId
		req.GroupInstanceId = &id
	}
	if req.Version >= 2 && req.Version < 5 {
		req.RetentionTime = -1
		if conf.Consumer.Offsets.Retention > 0 {
			req.RetentionTime = int64(conf.Consumer.Offsets.Retention / time.Millisecond)
		}
	}
	return req
}

// commitFetchTimeout bounds the fetch of committed offsets at an assignment.
const commitFetchTimeout = 30 * time.Second

// fetchCommitted reads the group's committed offsets and their metadata for
// the claimed partitions from the group coordinator, retrying until
// commitFetchTimeout or ctx ends.
func (a *App) fetchCommitted(ctx context.Context, claims map[string][]int32) (map[string]map[int32]committedPosition, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, commitFetchTimeout)
	defer cancel()
	type result struct {
		m   map[string]map[int32]committedPosition
		err error
	}
	for attempt := 0; ; attempt++ {
		res := make(chan result, 1)
		go func() {
			m, err := a.fetchCommittedOnce(claims)
			res <- result{m, err}
		}()
		var err error
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stream: fetch committed offsets: %w", ctx.Err())
		case r := <-res:
			if r.err == nil {
				return r.m, nil
			}
			err = r.err
		}
		_ = a.client.RefreshCoordinator(a.cfg.appID)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stream: fetch committed offsets: %w (%v)", err, ctx.Err())
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, time.Second)):
		}
	}
}

func (a *App) fetchCommittedOnce(claims map[string][]int32) (map[string]map[int32]committedPosition, error) {
	broker, err := a.client.Coordinator(a.cfg.appID)
	if err != nil {
		return nil, err
	}
	req := sarama.NewOffsetFetchRequest(a.client.Config().Version, a.cfg.appID, claims)
	// As sarama does for read_committed consumers: wait for offsets that an
	// open transaction is committing.
	req.RequireStable = req.Version >= 7
	resp, err := broker.FetchOffset(req)
	if err != nil {
		return nil, err
	}
	if kerr := resp.GroupError(); kerr != sarama.ErrNoError {
		return nil, kerr
	}
	out := map[string]map[int32]committedPosition{}
	for topic, parts := range claims {
		out[topic] = map[int32]committedPosition{}
		for _, p := range parts {
			b := resp.GetBlock(topic, p)
			if b == nil {
				return nil, fmt.Errorf("%s/%d: %w", topic, p, sarama.ErrIncompleteResponse)
			}
			if b.Err != sarama.ErrNoError {
				return nil, fmt.Errorf("%s/%d: %w", topic, p, b.Err)
			}
			out[topic][p] = committedPosition{offset: b.Offset, meta: b.Metadata}
		}
	}
	return out, nil
}

// ackTimeout bounds how long a commit waits for Kafka to acknowledge a
// task's records (a shutdown waits until its deadline at most). A broker restart takes seconds; a producer
// that is still waiting after this is stuck (or the broker is gone), and
// failing lets the application restart cleanly instead of hanging.
const ackTimeout = 45 * time.Second

// waitAcks waits until Kafka acknowledged every record t produced, or fails
// the application after ackTimeout (nothing is committed then, so the input
// is processed again by the next owner). The caller holds t.mu.
func (a *App) waitAcks(t *task) {
	done := make(chan struct{})
	go func() {
		t.pending.Wait()
		close(done)
	}()
	timer := time.NewTimer(ackTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		a.fail(fmt.Errorf("stream: task %v: records not acknowledged within %v", t.id, ackTimeout))
	case <-a.life.expired:
		select {
		case <-done: // acknowledged after all (or nothing was pending)
		default:
			a.fail(fmt.Errorf("stream: task %v: records not acknowledged before the shutdown deadline (%v); their input stays uncommitted", t.id, a.life.budget))
		}
	}
}

// commitTxn commits the open transaction with the tasks' offsets. Every task
// is locked for the duration, so nothing is produced between the offsets
// being taken and the next transaction beginning.
func (a *App) commitTxn(sess sarama.ConsumerGroupSession, tasks []*task) {
	sort.Slice(tasks, func(i, j int) bool {
		if tasks[i].id.Subtopology != tasks[j].id.Subtopology {
			return tasks[i].id.Subtopology < tasks[j].id.Subtopology
		}
		return tasks[i].id.Partition < tasks[j].id.Partition
	})
	offsets := map[string][]*sarama.PartitionOffsetMetadata{}
	var commits []*offsetCommit
	for _, t := range tasks {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.flushStores()
		a.waitAcks(t)
		if c := a.prepareCommit(t); c != nil {
			commits = append(commits, c)
			for topic, off := range c.offsets {
				meta := c.meta
				offsets[topic] = append(offsets[topic], &sarama.PartitionOffsetMetadata{Partition: t.id.Partition, Offset: off, Metadata: &meta})
			}
		}
	}
	if a.failure() != nil || (len(offsets) == 0 && !a.txnDirty.Load()) {
		return
	}
	gm := &sarama.ConsumerGroupMetadata{GroupID: a.cfg.appID, GenerationID: sess.GenerationID(), MemberID: sess.MemberID()}
	if len(offsets) > 0 {
		if err := a.life.bounded(func() error { return a.producer.AddOffsetsToTxnWithGroupMetadata(offsets, gm) }); err != nil {
			_ = a.life.bounded(a.producer.AbortTxn)
			a.fail(fmt.Errorf("stream: add offsets to transaction: %w", err))
			return
		}
	}
	if err := a.life.bounded(a.producer.CommitTxn); err != nil {
		_ = a.life.bounded(a.producer.AbortTxn)
		a.fail(fmt.Errorf("stream: commit transaction: %w", err))
		return
	}
	a.txnDirty.Store(false)
	for _, t := range tasks {
		// Committed: forget them, so an idle task does not add them again.
		clear(t.offsets)
	}
	for _, c := range commits {
		for topic, off := range c.offsets {
			c.t.committed[topic] = committedPosition{offset: off, meta: c.meta}
		}
		if c.advance {
			c.t.epochCommitted(c.epoch, c.st)
		}
	}
	if err := a.producer.BeginTxn(); err != nil {
		a.fail(fmt.Errorf("stream: begin transaction: %w", err))
	}
}

// cleanup commits and closes the session's tasks (consumer group callback).
func (a *App) cleanup(sess sarama.ConsumerGroupSession) error {
	// The tasks are handed over (to this process's next session, another
	// instance, or nobody at shutdown): nothing may be processed or
	// punctuated after the commit that precedes that, or the next owner
	// would find results of an epoch no commit covered.
	a.mu.RLock()
	for _, t := range a.tasks {
		t.mu.Lock()
		t.closing = true
		t.mu.Unlock()
	}
	a.mu.RUnlock()
	a.commit(sess)
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, t := range a.tasks {
		t.mu.Lock()
		// Writes after the commit (a late punctuation) still reach the
		// changelog before the store is handed on.
		t.flushStores()
		a.waitAcks(t)
		_ = t.closeLocked()
		for _, c := range t.stores {
			a.releaseBackend(c)
		}
		t.mu.Unlock()
		delete(a.tasks, id)
	}
	a.byClaim = map[string]map[int32]*task{}
	a.claimMu.Lock()
	a.claims = nil
	a.claimMu.Unlock()
	a.life.phase.Store(phaseJoining)
	// Tasks closed here that are assigned as standbys go on as such after
	// the next assignment (assignedStandbys).
	return nil
}

// consumeClaim processes one partition of one topic (consumer group callback).
func (a *App) consumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	cs := a.newClaimState(claim)
	a.claimMu.Lock()
	if a.claims == nil {
		a.claims = map[string]map[int32]*claimState{}
	}
	if a.claims[claim.Topic()] == nil {
		a.claims[claim.Topic()] = map[int32]*claimState{}
	}
	a.claims[claim.Topic()][claim.Partition()] = cs
	a.claimMu.Unlock()
	a.mu.RLock()
	t := a.byClaim[claim.Topic()][claim.Partition()]
	a.mu.RUnlock()
	if t == nil && a.cooperative() {
		// A task added by a cooperative rebalance: no Setup ran for it.
		var err error
		if t, err = a.addTask(sess, claim.Topic(), claim.Partition()); err != nil {
			if sess.Context().Err() == nil && a.life.ctx.Err() == nil {
				a.fail(err)
			}
			return err
		}
	}
	if t == nil {
		return fmt.Errorf("stream: no task for %s/%d", claim.Topic(), claim.Partition())
	}
	lag := a.met.lag.WithLabelValues(claim.Topic(), strconv.Itoa(int(claim.Partition())))
	in := a.met.recordsIn.WithLabelValues(claim.Topic())
	msgs := claim.Messages()
	var scratch inRecord
	for {
		var first *sarama.ConsumerMessage
		select {
		case <-sess.Context().Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				if a.cooperative() && sess.Context().Err() == nil {
					// Revoked by a cooperative rebalance (the session goes
					// on): hand the task over before the rejoin.
					a.revokeTask(sess, t)
				}
				return nil
			}
			first = m
		}
		// Process what the last fetch buffered (up to maxBatch records) under
		// one lock, so locking, clock reads and metrics are paid per batch.
		cs.last.Store(time.Now().UnixNano())
		start := time.Now()
		t.mu.Lock()
		n, last, err := a.processBatch(t, first, msgs, &scratch)
		t.mu.Unlock()
		if n > 0 {
			a.met.latency.Observe(time.Since(start).Seconds() / float64(n))
			in.Add(float64(n))
			hwm := claim.HighWaterMarkOffset()
			lag.Set(float64(hwm - last - 1))
			if last+1 >= hwm {
				cs.reached.Store(true)
			}
		}
		if err != nil {
			a.fail(err)
			return err
		}
	}
}

// maxBatch bounds how many buffered records ConsumeClaim processes under one
// task lock, so punctuations and commits wait at most that long.
const maxBatch = 512

// processBatch processes m and then whatever msgs has buffered, up to
// maxBatch records. It returns how many it processed and the last offset.
// r is reused for every record: nothing keeps an *inRecord after process
// returns (headers, key and value are the record's own). The caller holds
// t.mu.
func (a *App) processBatch(t *task, m *sarama.ConsumerMessage, msgs <-chan *sarama.ConsumerMessage, r *inRecord) (n int, last int64, err error) {
	for m != nil {
		*r = inRecord{topic: m.Topic, partition: m.Partition, offset: m.Offset, key: m.Key, value: m.Value, timestamp: m.Timestamp}
		if len(m.Headers) > 0 {
			r.headers = make([]Header, len(m.Headers))
			for i, h := range m.Headers {
				r.headers[i] = Header{Key: string(h.Key), Value: h.Value}
			}
		}
		if err := t.process(r); err != nil {
			return n, m.Offset, err
		}
		n, last = n+1, m.Offset
		if n >= maxBatch {
			break
		}
		select {
		case next, ok := <-msgs:
			if !ok {
				return n, last, nil
			}
			m = next
		default:
			m = nil
		}
	}
	return n, last, nil
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
	m := &sarama.ProducerMessage{Topic: r.topic, Partition: p, Timestamp: r.timestamp, Metadata: &ackCtx{t: t, store: r.store, topic: r.topic}}
	if r.key != nil {
		m.Key = sarama.ByteEncoder(r.key)
	}
	if r.value != nil {
		m.Value = sarama.ByteEncoder(r.value)
	}
	for _, h := range r.headers {
		m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
	}
	t.pending.Add(1)
	if a.cfg.exactlyOnce {
		a.txnDirty.Store(true)
	}
	a.producer.Input() <- m
	return nil
}

func (a *App) badRecord(t *task, r *inRecord, err error) error {
	return handleBadRecord(a, a.cfg.badAction, a.cfg.dlqTopic, t, r, err)
}

// storeDir is <StateDir>/<application id>/<store>-<partition>: apps with
// different ids never share a store folder, whatever their StateDir.
func (a *App) storeDir(store string, p int32) string {
	return filepath.Join(a.cfg.stateDir, a.cfg.appID, fmt.Sprintf("%s-%d", store, p))
}

func (a *App) openBackend(t *task, spec *storeSpec, _ string) (kv.Store, int64, error) {
	key := backendKey{spec.name, t.id.Partition}
	a.cacheMu.Lock()
	c, ok := a.cache[key]
	delete(a.cache, key)
	a.cacheMu.Unlock()
	if ok {
		return c.b, c.restoredTo, nil
	}
	if !spec.persistent {
		return kv.NewMemory(), 0, nil
	}
	dir := a.storeDir(spec.name, t.id.Partition)
	b, clean, err := kv.OpenPebble(dir, kv.PebbleLogger(a.cfg.logger.With("application_id", a.cfg.appID, "store", spec.name, "partition", t.id.Partition)))
	if err != nil {
		return nil, 0, err
	}
	var restoredTo int64
	if clean {
		if raw, err := os.ReadFile(dir + ".checkpoint"); err == nil {
			restoredTo, _ = strconv.ParseInt(string(raw), 10, 64)
		}
	}
	return b, restoredTo, nil
}

// releaseBackend keeps a closed task's store for a later reassignment: memory
// stores stay in the cache, persistent ones are closed cleanly with a
// checkpoint. Either way the next owner only reads the changelog's tail.
func (a *App) releaseBackend(c *storeCore) {
	restored := c.restoredTo
	if l := c.lastAcked.Load(); l+1 > restored {
		restored = l + 1
	}
	spec := a.top.stores[c.name]
	if !spec.persistent {
		a.cacheMu.Lock()
		a.cache[backendKey{c.name, c.partition}] = &cachedBackend{b: c.backend, restoredTo: restored}
		a.cacheMu.Unlock()
		return
	}
	dir := a.storeDir(c.name, c.partition)
	_ = os.Remove(dir + ".checkpoint")
	if err := c.backend.Close(); err != nil {
		a.cfg.logger.Warn("closing store", slog.String("store", c.name), slog.Any("err", err))
		return
	}
	_ = os.WriteFile(dir+".checkpoint", []byte(strconv.FormatInt(restored, 10)), 0o644)
}

func (a *App) closeBackends() {
	a.stopStandbys()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	for k, c := range a.cache {
		_ = c.b.Close()
		delete(a.cache, k)
	}
}

// restoreBatch is the most changelog records a restore writes to a store at
// once (see kv.WriteBatch).
const restoreBatch = 1024

// restore brings a store up to date with its changelog partition.
func (a *App) restore(t *task, c *storeCore) error {
	// A shutdown stops a restore at once (the next owner goes on from the
	// store's checkpoint or the changelog's start).
	ctx := a.life.ctx
	getOffset := func(at int64) (int64, error) {
		return await(a.life, ctx, func() (int64, error) { return a.client.GetOffset(c.changelog, c.partition, at) }, nil)
	}
	hwm, err := getOffset(sarama.OffsetNewest)
	if err != nil {
		return err
	}
	oldest, err := getOffset(sarama.OffsetOldest)
	if err != nil {
		return err
	}
	from := c.restoredTo
	if from < oldest {
		from = oldest
	}
	if from >= hwm {
		c.restoredTo = hwm
		return nil
	}
	start := time.Now()
	t.logger.Debug("restoring store", slog.String("store", c.name), slog.Int64("from", from), slog.Int64("to", hwm))
	pc, err := a.consumer.ConsumePartition(c.changelog, c.partition, from)
	if err != nil {
		return err
	}
	defer pc.Close()
	timeout := time.NewTimer(a.cfg.restoreTimeout)
	defer timeout.Stop()
	// With transactions the changelog ends in commit markers, which a
	// read_committed consumer skips without delivering, so restoredTo may
	// never reach the high watermark. The restore consumer fetches with a
	// short wait (Consumer.MaxWaitTime 100ms); a second of silence at an
	// unchanged high watermark means the tail holds only markers or
	// aborted records — but only once a fetch response has arrived (the
	// consumer's high watermark reads 0 before), or a slow first fetch
	// would end the restore with nothing read.
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	got := false
	n, idleTicks := 0, 0
	var ops []kv.Op
	for c.restoredTo < hwm {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream: restoring %s/%d stopped at offset %d of %d: %w", c.changelog, c.partition, c.restoredTo, hwm, ctx.Err())
		case <-idle.C:
			if !a.cfg.exactlyOnce || got || pc.HighWaterMarkOffset() == 0 {
				got = false
				continue
			}
			// Done only when no transaction is open on the partition (its
			// last stable offset has reached the high watermark): an open
			// one — say of an instance that just died — holds back every
			// record after its start until it commits or times out, and
			// the fetches meanwhile return nothing.
			now, err := a.client.GetOffset(c.changelog, c.partition, sarama.OffsetNewest)
			if err != nil || now != hwm {
				hwm = max(hwm, now)
				continue
			}
			// Nothing read at all although offsets lie ahead: give the
			// consumer a few more seconds before believing they are only
			// markers and aborted records.
			if idleTicks++; n == 0 && hwm-from > 1 && idleTicks < 5 {
				continue
			}
			if lso, err := a.lastStableOffset(c.changelog, c.partition); err == nil && lso >= hwm {
				c.restoredTo = hwm
			}
		case m := <-pc.Messages():
			got = true
			// Apply what the consumer has buffered as one batch (one lock
			// or one Pebble commit for up to restoreBatch records).
			ops = append(ops[:0], kv.Op{Key: m.Key, Value: m.Value, Delete: m.Value == nil})
			last := m.Offset
		more:
			for len(ops) < restoreBatch && last+1 < hwm {
				select {
				case m := <-pc.Messages():
					ops = append(ops, kv.Op{Key: m.Key, Value: m.Value, Delete: m.Value == nil})
					last = m.Offset
				default:
					break more
				}
			}
			if err := kv.WriteBatch(c.backend, ops); err != nil {
				return err
			}
			c.restoredTo = last + 1
			n += len(ops)
		case e := <-pc.Errors():
			return e
		case <-timeout.C:
			return fmt.Errorf("stream: restoring %s/%d timed out at offset %d of %d", c.changelog, c.partition, c.restoredTo, hwm)
		}
	}
	a.met.restored.WithLabelValues(c.name).Add(float64(n))
	t.logger.Info("store restored", slog.String("store", c.name), slog.Int64("from", from), slog.Int("records", n), slog.Duration("took", time.Since(start)))
	return nil
}

// lastStableOffset asks the partition's leader for its last stable offset
// (ListOffsets with read_committed isolation): the first offset of the
// oldest open transaction, or the high watermark when none is open.
func (a *App) lastStableOffset(topic string, partition int32) (int64, error) {
	broker, err := a.client.Leader(topic, partition)
	if err != nil {
		return 0, err
	}
	req := sarama.NewOffsetRequest(a.client.Config().Version)
	req.IsolationLevel = sarama.ReadCommitted
	req.AddBlock(topic, partition, sarama.OffsetNewest, 1)
	resp, err := broker.GetAvailableOffsets(req)
	if err != nil {
		return 0, err
	}
	block := resp.GetBlock(topic, partition)
	if block == nil {
		return 0, fmt.Errorf("stream: no offset for %s/%d", topic, partition)
	}
	if block.Err != sarama.ErrNoError {
		return 0, block.Err
	}
	return block.Offset, nil
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
