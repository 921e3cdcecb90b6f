package stream

import (
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
	// rc is the record cache budget; nil when CacheMaxBytes is 0.
	rc *recordCache
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
	if cfg.stateDir == "" {
		cfg.stateDir = filepath.Join(os.TempDir(), "stream-state", cfg.appID)
	}
	a := &App{
		cfg: cfg, top: top,
		tasks: map[TaskID]*task{}, byClaim: map[string]map[int32]*task{},
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
func (a *App) Run(ctx context.Context) error {
	err := ErrClosed
	a.ran.Do(func() { err = a.run(ctx) })
	return err
}

func (a *App) run(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	a.cancel = cancel
	log := a.cfg.logger.With("application_id", a.cfg.appID)
	sc := a.saramaConfig()
	client, err := sarama.NewClient(a.cfg.brokers, sc)
	if err != nil {
		return fmt.Errorf("stream: connect to %v: %w", a.cfg.brokers, err)
	}
	a.client = client
	defer client.Close()
	topics, err := a.prepareTopics(sc)
	if err != nil {
		return err
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("stream: restore consumer: %w", err)
	}
	a.consumer = consumer
	defer consumer.Close()
	producer, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return fmt.Errorf("stream: producer: %w", err)
	}
	a.producer = producer
	if a.cfg.exactlyOnce {
		if err := producer.BeginTxn(); err != nil {
			producer.AsyncClose()
			return fmt.Errorf("stream: begin transaction: %w", err)
		}
	}
	acksDone := make(chan struct{})
	go a.handleAcks(acksDone)
	group, err := sarama.NewConsumerGroupFromClient(a.cfg.appID, client)
	if err != nil {
		producer.AsyncClose()
		<-acksDone
		return fmt.Errorf("stream: consumer group: %w", err)
	}
	go func() {
		for err := range group.Errors() {
			log.Warn("consumer group error", slog.Any("err", err))
		}
	}()
	log.Info("stream application started", slog.Any("topics", topics), slog.Int("subtopologies", len(a.top.subs)))
	for ctx.Err() == nil {
		if err := group.Consume(ctx, topics, a); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
				break
			}
			log.Warn("consume session ended", slog.Any("err", err))
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	gerr := group.Close()
	if a.cfg.exactlyOnce && producer.TxnStatus()&sarama.ProducerTxnFlagInTransaction != 0 {
		// Whatever was not committed at revoke is dropped, never half-visible.
		_ = producer.AbortTxn()
	}
	producer.AsyncClose()
	<-acksDone
	a.closeBackends()
	if err := a.failure(); err != nil {
		return err
	}
	if gerr != nil {
		return fmt.Errorf("stream: leave group: %w", gerr)
	}
	log.Info("stream application stopped")
	return nil
}

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
	detail := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: a.cfg.replication, ConfigEntries: map[string]*string{}}
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

// Setup builds the tasks of the new assignment (consumer group callback).
func (a *App) Setup(sess sarama.ConsumerGroupSession) error {
	claims := sess.Claims()
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
	for k, c := range a.cache {
		if !assigned[k] {
			_ = c.b.Close()
			delete(a.cache, k)
		}
	}
	for _, st := range a.top.subs {
		first := resolveTopic(a.cfg.appID, st.sources[0])
		for _, p := range claims[first] {
			t, err := newTask(a.top, st, p, a)
			if err != nil {
				a.fail(err)
				return err
			}
			a.tasks[t.id] = t
			for _, s := range st.sources {
				topic := resolveTopic(a.cfg.appID, s)
				if a.byClaim[topic] == nil {
					a.byClaim[topic] = map[int32]*task{}
				}
				a.byClaim[topic][p] = t
			}
			t.caughtUp = func() bool { return a.caughtUp(t) }
		}
	}
	a.cfg.logger.Info("tasks assigned", slog.String("application_id", a.cfg.appID), slog.Int("tasks", len(a.tasks)), slog.Int("generation", int(sess.GenerationID())))
	go a.sessionLoops(sess)
	return nil
}

// sessionLoops commits periodically and runs wall-clock punctuations until
// the session ends.
func (a *App) sessionLoops(sess sarama.ConsumerGroupSession) {
	commit := time.NewTicker(a.cfg.commitInterval)
	defer commit.Stop()
	wall := time.NewTicker(a.cfg.wallClockInterval)
	defer wall.Stop()
	for {
		select {
		case <-sess.Context().Done():
			return
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
// marks and commits the task's offsets. Offsets are never committed ahead of
// the output (and changelog writes) of the records they cover.
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
	marked := false
	for _, t := range tasks {
		t.mu.Lock()
		t.flushStores()
		a.waitAcks(t)
		if a.failure() == nil {
			for topic, off := range t.offsets {
				sess.MarkOffset(topic, t.id.Partition, off, "")
				marked = true
			}
		}
		t.mu.Unlock()
	}
	if marked && a.failure() == nil {
		sess.Commit()
	}
}

// ackTimeout bounds how long a commit (or a shutdown) waits for Kafka to
// acknowledge a task's records. A broker restart takes seconds; a producer
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
	select {
	case <-done:
	case <-time.After(ackTimeout):
		a.fail(fmt.Errorf("stream: task %v: records not acknowledged within %v", t.id, ackTimeout))
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
	for _, t := range tasks {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.flushStores()
		a.waitAcks(t)
		for topic, off := range t.offsets {
			offsets[topic] = append(offsets[topic], &sarama.PartitionOffsetMetadata{Partition: t.id.Partition, Offset: off})
		}
	}
	if a.failure() != nil || (len(offsets) == 0 && !a.txnDirty.Load()) {
		return
	}
	gm := &sarama.ConsumerGroupMetadata{GroupID: a.cfg.appID, GenerationID: sess.GenerationID(), MemberID: sess.MemberID()}
	if len(offsets) > 0 {
		if err := a.producer.AddOffsetsToTxnWithGroupMetadata(offsets, gm); err != nil {
			_ = a.producer.AbortTxn()
			a.fail(fmt.Errorf("stream: add offsets to transaction: %w", err))
			return
		}
	}
	if err := a.producer.CommitTxn(); err != nil {
		_ = a.producer.AbortTxn()
		a.fail(fmt.Errorf("stream: commit transaction: %w", err))
		return
	}
	a.txnDirty.Store(false)
	for _, t := range tasks {
		// Committed: forget them, so an idle task does not add them again.
		clear(t.offsets)
	}
	if err := a.producer.BeginTxn(); err != nil {
		a.fail(fmt.Errorf("stream: begin transaction: %w", err))
	}
}

// Cleanup commits and closes the session's tasks (consumer group callback).
func (a *App) Cleanup(sess sarama.ConsumerGroupSession) error {
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
	return nil
}

type claimState struct {
	claim sarama.ConsumerGroupClaim
	last  atomic.Int64 // unix ns of the last message (or of the claim's start)
}

// quietGap is how many offsets below the high watermark a silent partition
// may stop and still count as caught up (see caughtUp).
const quietGap = 64

// caughtUp: every source partition of t is being consumed and its next
// offset to process has reached the high watermark of the last fetch. The
// caller holds t.mu.
//
// Transaction markers at a partition's tail are never delivered, so the next
// offset can stay below the high watermark of an idle, transactionally
// written partition: a partition that delivered nothing for a second with an
// empty buffer counts as caught up too.
func (a *App) caughtUp(t *task) bool {
	a.claimMu.Lock()
	defer a.claimMu.Unlock()
	for topic := range t.sources {
		cs, ok := a.claims[topic][t.id.Partition]
		if !ok {
			return false
		}
		c := cs.claim
		hwm := c.HighWaterMarkOffset()
		next, processed := t.position[topic]
		if !processed {
			next = c.InitialOffset()
		}
		// Before the first fetch the high watermark reads 0: unknown unless
		// the starting position is 0 as well.
		atEnd := next >= 0 && !(hwm == 0 && next > 0) && next >= hwm
		// Quiet: nothing buffered or delivered for a second, after at least
		// one fetch (hwm > 0), with at most a few offsets left — transaction
		// markers or an aborted batch. A larger gap is a backlog the
		// consumer has not fetched yet (a slow first fetch, a broker that
		// is restarting): waiting for it keeps its records from being
		// declared late. Only after 30 s of silence does any gap count.
		silent := time.Since(time.Unix(0, cs.last.Load()))
		quiet := len(c.Messages()) == 0 && hwm > 0 &&
			((hwm-next <= quietGap && silent > time.Second) || silent > 30*time.Second)
		if !atEnd && !quiet {
			return false
		}
	}
	return true
}

// ConsumeClaim processes one partition of one topic (consumer group callback).
func (a *App) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	a.mu.RLock()
	t := a.byClaim[claim.Topic()][claim.Partition()]
	a.mu.RUnlock()
	cs := &claimState{claim: claim}
	cs.last.Store(time.Now().UnixNano())
	a.claimMu.Lock()
	if a.claims == nil {
		a.claims = map[string]map[int32]*claimState{}
	}
	if a.claims[claim.Topic()] == nil {
		a.claims[claim.Topic()] = map[int32]*claimState{}
	}
	a.claims[claim.Topic()][claim.Partition()] = cs
	a.claimMu.Unlock()
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
			lag.Set(float64(claim.HighWaterMarkOffset() - last - 1))
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

func (a *App) storeDir(store string, p int32) string {
	return filepath.Join(a.cfg.stateDir, fmt.Sprintf("%s-%d", store, p))
}

func (a *App) openBackend(t *task, spec *storeSpec, _ string) (kv.Store, int64, error) {
	key := backendKey{spec.name, t.id.Partition}
	if c, ok := a.cache[key]; ok {
		delete(a.cache, key)
		return c.b, c.restoredTo, nil
	}
	if !spec.persistent {
		return kv.NewMemory(), 0, nil
	}
	dir := a.storeDir(spec.name, t.id.Partition)
	b, clean, err := kv.OpenPebble(dir)
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
		a.cache[backendKey{c.name, c.partition}] = &cachedBackend{b: c.backend, restoredTo: restored}
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
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, c := range a.cache {
		_ = c.b.Close()
		delete(a.cache, k)
	}
}

// restore brings a store up to date with its changelog partition.
func (a *App) restore(t *task, c *storeCore) error {
	hwm, err := a.client.GetOffset(c.changelog, c.partition, sarama.OffsetNewest)
	if err != nil {
		return err
	}
	oldest, err := a.client.GetOffset(c.changelog, c.partition, sarama.OffsetOldest)
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
	for c.restoredTo < hwm {
		select {
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
			if m.Value == nil {
				err = c.backend.Delete(m.Key)
			} else {
				err = c.backend.Put(m.Key, m.Value)
			}
			if err != nil {
				return err
			}
			c.restoredTo = m.Offset + 1
			n++
		case e := <-pc.Errors():
			return e
		case <-timeout.C:
			return fmt.Errorf("stream: restoring %s/%d timed out at offset %d of %d", c.changelog, c.partition, c.restoredTo, hwm)
		}
	}
	t.logger.Info("store restored", slog.String("store", c.name), slog.Int("records", n), slog.Duration("took", time.Since(start)))
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

// taskBalancer assigns whole tasks: partition p of every source topic of a
// sub-topology goes to the same member, so a task sees all its co-partitioned
// input. Tasks are dealt round-robin over the sorted member ids.
type taskBalancer struct{ a *App }

func (b *taskBalancer) Name() string { return "stream-tasks" }

func (b *taskBalancer) Plan(members map[string]sarama.ConsumerGroupMemberMetadata, topics map[string][]int32) (sarama.BalanceStrategyPlan, error) {
	ids := make([]string, 0, len(members))
	for id := range members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	plan := sarama.BalanceStrategyPlan{}
	if len(ids) == 0 {
		return plan, nil
	}
	i := 0
	for _, st := range b.a.top.subs {
		first := resolveTopic(b.a.cfg.appID, st.sources[0])
		parts := append([]int32(nil), topics[first]...)
		sort.Slice(parts, func(x, y int) bool { return parts[x] < parts[y] })
		for _, p := range parts {
			m := ids[i%len(ids)]
			i++
			for _, s := range st.sources {
				plan.Add(m, resolveTopic(b.a.cfg.appID, s), p)
			}
		}
	}
	return plan, nil
}

func (b *taskBalancer) AssignmentData(string, map[string][]int32, int32) ([]byte, error) {
	return nil, nil
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
