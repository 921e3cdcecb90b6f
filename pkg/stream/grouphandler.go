package stream

// Consumer group membership: the sarama handler of an App and what its
// callbacks do, building the tasks of an assignment (setup), processing each
// claimed partition (consumeClaim) and committing and closing at the end of a
// session (cleanup).

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// groupHandler is the sarama.ConsumerGroupHandler of an App. It is a
// separate type so that the consumer group's callbacks are not part of
// App's API: only the runtime calls them.
type groupHandler App

// Setup builds the tasks of the new assignment.
func (h *groupHandler) Setup(sess sarama.ConsumerGroupSession) error { return (*App)(h).setup(sess) }

// Cleanup commits and closes the session's tasks.
func (h *groupHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	return (*App)(h).cleanup(sess)
}

// ConsumeClaim processes one partition of one topic.
func (h *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	return (*App)(h).consumeClaim(sess, claim)
}

// setup builds the tasks of the new assignment (consumer group callback,
// through groupHandler).
func (a *App) setup(sess sarama.ConsumerGroupSession) error {
	if err := a.life.ctx.Err(); err != nil {
		return err // shutting down: no new tasks
	}
	a.life.phase.Store(phaseSetup)
	a.refreshState()
	a.sess.Store(&sessionRef{sess})
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
	a.claimMu.Lock()
	a.assignedAt = time.Now().UnixNano()
	a.claimMu.Unlock()
	a.life.phase.Store(phaseProcessing)
	a.refreshStateLocked()
	a.life.bg.Add(1)
	go func() {
		defer a.life.bg.Done()
		a.sessionLoops(sess)
	}()
	return nil
}

// sessionLoops commits periodically, runs wall-clock punctuations and
// checks warm-up replicas until the session ends.
func (a *App) sessionLoops(sess sarama.ConsumerGroupSession) {
	wall := time.NewTicker(a.cfg.wallClockInterval)
	defer wall.Stop()
	if a.warmupsEnabled() {
		a.life.bg.Go(func() { a.warmupLoop(sess) })
	}
	// Commits and high-watermark requests wait for Kafka: they run in
	// loops of their own, so wall-clock punctuations (a window closing) do
	// not wait behind them.
	a.life.bg.Go(func() { every(sess, a.cfg.commitInterval, func() { a.commit(sess) }) })
	a.life.bg.Go(func() { every(sess, hwmRefreshInterval, a.refreshHighWatermarks) })
	a.life.bg.Go(func() { every(sess, time.Second, a.checkStalls) })
	for {
		select {
		case <-sess.Context().Done():
			return
		case <-wall.C:
			a.mu.RLock()
			tasks := make([]*task, 0, len(a.tasks))
			for _, t := range a.tasks {
				tasks = append(tasks, t)
			}
			a.mu.RUnlock()
			// The tasks punctuate concurrently (they share no state, as
			// their claims process concurrently): a punctuation that waits
			// for Kafka — a window close made durable with FlushStores —
			// does not hold back the other tasks', and their flushes and
			// membership probes go out together.
			now := time.Now()
			var failed atomic.Pointer[error]
			var wg sync.WaitGroup
			for _, t := range tasks {
				wg.Go(func() {
					t.mu.Lock()
					err := t.punctuate(WallClockTime, now)
					t.mu.Unlock()
					if err != nil {
						failed.CompareAndSwap(nil, &err)
					}
				})
			}
			wg.Wait()
			if err := failed.Load(); err != nil {
				a.fail(*err)
				return
			}
		}
	}
}

// every calls fn every interval until the session ends.
func every(sess sarama.ConsumerGroupSession, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-sess.Context().Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// cleanup commits and closes the session's tasks (consumer group callback).
func (a *App) cleanup(sess sarama.ConsumerGroupSession) error {
	// The tasks are handed over (to this process's next session, another
	// instance, or nobody at shutdown): nothing may be processed or
	// punctuated after the commit that precedes that, or the next owner
	// would find results of an epoch no commit covered.
	if !a.cfg.exactlyOnce && a.failure() == nil {
		// A session that ended because the group no longer knows this
		// member (sarama ends it quietly on such a heartbeat answer) must
		// not flush its tasks' held-back state over their new owners'.
		if err := a.probeMembership(sess); err != nil {
			a.markLost(err)
		}
	}
	a.mu.RLock()
	tasks := make([]*task, 0, len(a.tasks))
	for _, t := range a.tasks {
		tasks = append(tasks, t)
	}
	a.mu.RUnlock()
	a.handOverPunctuations(tasks...)
	for _, t := range tasks {
		t.mu.Lock()
		t.closing = true
		t.mu.Unlock()
	}
	a.commit(sess)
	a.sess.Store(nil)
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, t := range a.tasks {
		a.closeTask(t)
		delete(a.tasks, id)
	}
	a.byClaim = map[string]map[int32]*task{}
	a.claimMu.Lock()
	a.claims, a.starting, a.unclaimedWarned, a.assignedAt = nil, nil, nil, 0
	a.claimMu.Unlock()
	a.life.phase.Store(phaseJoining)
	a.refreshStateLocked()
	// Tasks closed here that are assigned as standbys go on as such after
	// the next assignment (assignedStandbys).
	return nil
}

// consumeClaim processes one partition of one topic (consumer group callback).
func (a *App) consumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	a.claimMu.Lock()
	if a.starting == nil {
		a.starting = map[string]map[int32]int64{}
	}
	if a.starting[claim.Topic()] == nil {
		a.starting[claim.Topic()] = map[int32]int64{}
	}
	a.starting[claim.Topic()][claim.Partition()] = time.Now().UnixNano()
	a.claimMu.Unlock()
	cs := a.newClaimState(claim)
	a.claimMu.Lock()
	a.cfg.logger.Debug("claim started", slog.String("application_id", a.cfg.appID), slog.String("topic", claim.Topic()),
		slog.Int("partition", int(claim.Partition())), slog.Int64("initial_offset", claim.InitialOffset()),
		slog.Int64("start", cs.start), slog.Int64("high_watermark", claim.HighWaterMarkOffset()),
		slog.Duration("resolving", time.Since(time.Unix(0, a.starting[claim.Topic()][claim.Partition()]))))
	delete(a.starting[claim.Topic()], claim.Partition())
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
	delivered := false
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
			a.delivered(cs, last)
			if !delivered {
				delivered = true
				a.cfg.logger.Debug("claim delivered its first records", slog.String("application_id", a.cfg.appID),
					slog.String("topic", claim.Topic()), slog.Int("partition", int(claim.Partition())),
					slog.Int64("first_offset", first.Offset), slog.Int("records", n), slog.Int64("high_watermark", hwm))
			}
		}
		if err != nil {
			a.fail(err)
			return err
		}
		if t.lost.Load() && !a.cooperative() {
			// Dropped (see membershipLost): under the eager protocol a
			// claim that returns ends the session, and the member rejoins.
			return nil
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

// handOverPunctuations runs the tasks' wall-clock punctuations once more
// before a graceful hand-over's last commit (a revocation, the end of a
// session, the shutdown): work the wall clock has made due — a window whose
// end + grace just passed — is done by the owner that has the task's state
// at hand, rather than a second or more later by the next owner after the
// rebalance and the restore. Tasks of a lost membership, or of a runtime
// that failed, do nothing. An error is logged: the next owner does the
// work instead.
func (a *App) handOverPunctuations(tasks ...*task) {
	if a.failure() != nil {
		return
	}
	now := time.Now()
	var wg sync.WaitGroup
	for _, t := range tasks {
		wg.Go(func() {
			t.mu.Lock()
			err := t.punctuateAtHandOver(now)
			t.mu.Unlock()
			if err != nil && !errors.Is(err, errTaskLost) {
				a.cfg.logger.Warn("wall-clock punctuation at hand-over failed; the next owner does its work",
					slog.String("application_id", a.cfg.appID), slog.String("task", taskKey(t.id)), slog.Any("err", err))
			}
		})
	}
	wg.Wait()
}
