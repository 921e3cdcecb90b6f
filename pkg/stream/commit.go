package stream

// Offset commits: the periodic and revoke-time commits of the tasks' input
// offsets with their commit metadata, the wait for produced records' acks,
// the fetch of committed positions, and the exactly-once transactions.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

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
		if t.lost.Load() {
			continue // another instance owns it now: nothing of it is committed
		}
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
			if broker, err = a.coordClient().Coordinator(a.cfg.appID); err == nil {
				r, err = broker.CommitOffset(req)
			}
			if err == nil {
				err = coordinatorError(r)
			}
			if err == nil {
				resp = r
				return nil
			}
			_ = a.coordClient().RefreshCoordinator(a.cfg.appID)
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
	if failed != nil && !a.cfg.exactlyOnce && (errors.Is(failed, sarama.ErrUnknownMemberId) || errors.Is(failed, sarama.ErrFencedInstancedId) ||
		(!a.cooperative() && errors.Is(failed, sarama.ErrIllegalGeneration))) {
		a.membershipLost(failed)
		return
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

// probeMembership asks the group coordinator, with a heartbeat of the
// session's member and generation, whether this instance still belongs to
// the group. It returns the coordinator's error when the instance does not
// (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, or ILLEGAL_GENERATION under the
// eager protocol) and nil otherwise, also when the coordinator cannot be
// asked (then the commit that follows decides).
func (a *App) probeMembership(sess sarama.ConsumerGroupSession) error {
	broker, err := a.coordClient().Coordinator(a.cfg.appID)
	if err != nil {
		return nil
	}
	req := &sarama.HeartbeatRequest{Version: 4, GroupId: a.cfg.appID, MemberId: sess.MemberID(), GenerationId: sess.GenerationID()}
	if id := a.cfg.group.instanceID; id != "" {
		req.GroupInstanceId = &id
	}
	var resp *sarama.HeartbeatResponse
	if err := a.life.bounded(func() error {
		var err error
		resp, err = broker.Heartbeat(req)
		return err
	}); err != nil || resp == nil {
		return nil
	}
	switch {
	case errors.Is(resp.Err, sarama.ErrUnknownMemberId), errors.Is(resp.Err, sarama.ErrFencedInstancedId),
		!a.cooperative() && errors.Is(resp.Err, sarama.ErrIllegalGeneration):
		return resp.Err
	}
	return nil
}

// coordClient is the client for the application's own requests to the
// group coordinator (offset commits and fetches, membership probes): the
// producer's, whose connections carry no long-polling fetches. Kafka
// answers the requests of one connection in order, so on the consumer's
// connections each of them waited behind a fetch for up to
// Consumer.MaxWaitTime (100 ms).
func (a *App) coordClient() sarama.Client {
	if a.pclient != nil {
		return a.pclient
	}
	return a.client
}

// sessionRef holds a consumer group session for an atomic.Pointer.
type sessionRef struct{ s sarama.ConsumerGroupSession }

// stillOwner confirms with a heartbeat probe that this instance is still the
// group member its tasks were assigned to, after FlushStores made a task's
// state durable and before the processor acts on it: if so, no successor
// can have restored the task's stores before they held that state. A lost
// membership drops every task (membershipLost) and returns errTaskLost.
// Under transactions there is nothing to confirm (zombies are fenced).
func (a *App) stillOwner(t *task) error {
	if a.cfg.exactlyOnce {
		return nil
	}
	ref := a.sess.Load()
	if ref == nil {
		return nil
	}
	if err := a.sharedProbe(ref.s, time.Now()); err != nil {
		// The caller holds t.mu, and marking the other tasks takes a.mu,
		// which a session's cleanup holds while it waits for task locks.
		t.lost.Store(true)
		go a.membershipLost(err)
		return errTaskLost
	}
	return nil
}

// probeCall is one membership probe: started at start, done when done is
// closed, with its answer in err.
type probeCall struct {
	start time.Time
	done  chan struct{}
	err   error
}

// sharedProbe answers probeMembership for a caller whose flush completed at
// flushed, sharing a probe with concurrent callers: a probe sent after the
// flush was acknowledged answers for it, so tasks closing windows at the
// same wall-clock tick pay one round trip, not one each.
func (a *App) sharedProbe(sess sarama.ConsumerGroupSession, flushed time.Time) error {
	a.probeMu.Lock()
	c := a.probeCur
	if c == nil || c.start.Before(flushed) {
		c = &probeCall{start: time.Now(), done: make(chan struct{})}
		a.probeCur = c
		go func() {
			c.err = a.probeMembership(sess)
			close(c.done)
		}()
	}
	a.probeMu.Unlock()
	<-c.done
	return c.err
}

// membershipLost is called when the group coordinator says this instance
// is no longer the member its tasks were assigned to (its session timed
// out during a stall, say): the group gave the tasks' partitions to other
// instances, which restore the stores from the changelogs and process the
// uncommitted input again. As Kafka Streams does with lost tasks, every
// task stops at once and is dropped dirty: nothing more is processed,
// flushed or committed, and local state (held-back writes, the store
// copies) is discarded, so a stale instance does not write over its
// successor's changelog. The instance then rejoins as a new member: under
// the eager protocol its claims return, which ends the session; under the
// cooperative one, whose sessions outlive a rejoin (and would keep the
// dropped tasks' claims), the runtime restarts (RestartOnFailure).
func (a *App) membershipLost(err error) {
	a.markLost(err)
	if a.cooperative() && a.life.ctx.Err() == nil { // not when shutting down anyway
		a.fail(fmt.Errorf("stream: this instance is no longer a member of the group; restarting: %w", err))
	}
}

// markLost marks every task lost (see membershipLost) and logs it.
func (a *App) markLost(err error) {
	a.mu.RLock()
	n := 0
	for _, t := range a.tasks {
		if !t.lost.Swap(true) {
			n++
		}
	}
	a.mu.RUnlock()
	if n > 0 {
		a.cfg.logger.Warn("this instance is no longer a member of the group: its tasks are dropped without a commit; their new owners process their uncommitted input again",
			slog.String("application_id", a.cfg.appID), slog.Int("tasks", n), slog.Any("err", err))
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
		_ = a.coordClient().RefreshCoordinator(a.cfg.appID)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stream: fetch committed offsets: %w (%v)", err, ctx.Err())
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, time.Second)):
		}
	}
}

func (a *App) fetchCommittedOnce(claims map[string][]int32) (map[string]map[int32]committedPosition, error) {
	broker, err := a.coordClient().Coordinator(a.cfg.appID)
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

// defaultAckTimeout bounds how long a commit waits for Kafka to acknowledge a
// task's records (a shutdown waits until its deadline at most). A broker restart takes seconds; a producer
// that is still waiting after this is stuck (or the broker is gone), and
// failing lets the application restart cleanly instead of hanging.
const defaultAckTimeout = 45 * time.Second

// ackTimeout returns the App's ack timeout (defaultAckTimeout but in tests).
func (a *App) ackTimeout() time.Duration {
	if a.cfg.ackTimeout > 0 {
		return a.cfg.ackTimeout
	}
	return defaultAckTimeout
}

// ackSlowAfter is how long a commit waits for acknowledgements before it
// logs a warning: 5 s, or half the ack timeout when that is shorter.
func ackSlowAfter(timeout time.Duration) time.Duration { return min(5*time.Second, timeout/2) }

// waitAcks waits until Kafka acknowledged every record t produced, or fails
// the application after ackTimeout (nothing is committed then, so the input
// is processed again by the next owner). The caller holds t.mu.
func (a *App) waitAcks(t *task) {
	_ = a.awaitAcks(&t.pending, fmt.Sprintf("task %v: records", t.id))
}

// waitStoreAcks waits until Kafka acknowledged every changelog record c
// sent, with waitAcks' limits; it returns the error that failed the
// application if they were not. The caller holds t.mu.
func (a *App) waitStoreAcks(t *task, c *storeCore) error {
	return a.awaitAcks(&c.inflight, fmt.Sprintf("task %v: changelog of store %s", t.id, c.name))
}

// awaitAcks waits until sent is done — records sent to Kafka, what they
// are — for at most ackTimeout, and no longer than the shutdown deadline;
// otherwise it fails the application and returns the error.
func (a *App) awaitAcks(sent *sync.WaitGroup, what string) error {
	done := make(chan struct{})
	go func() {
		sent.Wait()
		close(done)
	}()
	limit := a.ackTimeout()
	slowAfter := ackSlowAfter(limit)
	timer := time.NewTimer(limit)
	defer timer.Stop()
	slow := time.NewTimer(slowAfter)
	defer slow.Stop()
	var err error
wait:
	for {
		select {
		case <-done:
			return nil
		case <-slow.C:
			// Nothing fails yet, but nothing is committed either: say so,
			// or a stuck producer looks like an idle application until the
			// timeout.
			a.cfg.logger.Warn("waiting for Kafka to acknowledge writes", slog.String("what", what),
				slog.Duration("waited", slowAfter), slog.Duration("fails_after", limit))
		case <-timer.C:
			err = fmt.Errorf("stream: %s not acknowledged within %v", what, limit)
			break wait
		case <-a.life.expired:
			select {
			case <-done: // acknowledged after all (or nothing was pending)
				return nil
			default:
				err = fmt.Errorf("stream: %s not acknowledged before the shutdown deadline (%v); their input stays uncommitted", what, a.life.budget)
			}
			break wait
		}
	}
	a.fail(err)
	return err
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

// coordinatorSplit is the client the consumer group is built on: the
// consumer's client for everything (metadata, partition leaders, the
// fetches of sarama's partition consumers), except that the group
// coordinator is found, and talked to, through coord's connections. See Run
// for why.
type coordinatorSplit struct {
	sarama.Client
	coord sarama.Client
}

// Coordinator returns the group coordinator's broker on coord's connections.
func (c coordinatorSplit) Coordinator(group string) (*sarama.Broker, error) {
	return c.coord.Coordinator(group)
}

// RefreshCoordinator looks the group coordinator up again, on coord.
func (c coordinatorSplit) RefreshCoordinator(group string) error {
	return c.coord.RefreshCoordinator(group)
}
