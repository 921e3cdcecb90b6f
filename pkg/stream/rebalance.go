package stream

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/IBM/sarama"
)

// Incremental rebalancing (the cooperative protocol, KIP-429). In
// at-least-once mode the group uses sarama's cooperative protocol: a
// rebalance does not end the session. Tasks that stay on an instance keep
// processing and committing throughout; a task that moves is revoked first
// (revokeTask: its last commit, then its stores are released) and its new
// owner creates it when its partitions arrive (addTask). Setup and Cleanup
// only run at the start and end of a session — the first assignment, a
// lost membership, the shutdown. With exactly-once the group stays eager
// (see taskBalancer.SupportedProtocols).

// cooperative tells whether the group uses the cooperative protocol.
func (a *App) cooperative() bool { return a.cfg.group.cooperative && !a.cfg.exactlyOnce }

// CooperativeRebalancing makes an at-least-once application use the
// cooperative (incremental) rebalance protocol: tasks that stay on an
// instance keep processing during a rebalance and only moved tasks are
// handed over (Kafka Streams' default). It is off by default in this
// pre-release so that an upgrade does not change an application's protocol
// unasked; EmoStream turns it on. It has no effect with ExactlyOnce, which
// always rebalances eagerly.
func CooperativeRebalancing() Opt {
	return optFunc(func(c *config) { c.group.cooperative = true })
}

// taskBuild is a task being created after a cooperative rebalance; the
// claims of its other source topics wait for it.
type taskBuild struct {
	done chan struct{}
	t    *task
	err  error
}

// addTask creates the task that topic/partition belongs to, once for all
// its claims, and registers it. It fetches the task's committed offsets and
// restores its stores as Setup does.
func (a *App) addTask(sess sarama.ConsumerGroupSession, topic string, partition int32) (*task, error) {
	var st *subtopology
	for _, s := range a.top.subs {
		for _, src := range s.sources {
			if resolveTopic(a.cfg.appID, src) == topic {
				st = s
			}
		}
	}
	if st == nil {
		return nil, fmt.Errorf("stream: no sub-topology reads %s", topic)
	}
	id := TaskID{Subtopology: st.id, Partition: partition}
	a.mu.Lock()
	if t := a.tasks[id]; t != nil {
		a.mu.Unlock()
		return t, nil
	}
	if b := a.building[id]; b != nil {
		a.mu.Unlock()
		<-b.done
		return b.t, b.err
	}
	b := &taskBuild{done: make(chan struct{})}
	a.building[id] = b
	a.mu.Unlock()
	a.refreshState()
	defer a.refreshState() // after the task is registered (or its build failed)
	defer close(b.done)

	claims := map[string][]int32{}
	for _, src := range st.sources {
		claims[resolveTopic(a.cfg.appID, src)] = []int32{partition}
	}
	committed, err := a.fetchCommitted(sess.Context(), claims)
	var t *task
	if err == nil {
		start := taskStart{committed: map[string]committedPosition{}, started: a.started}
		for topic := range claims {
			if cp, ok := committed[topic][partition]; ok {
				start.committed[topic] = cp
			}
		}
		t, err = newTask(a.top, st, partition, a, start)
	}
	a.mu.Lock()
	delete(a.building, id)
	if err == nil {
		a.tasks[id] = t
		a.active[id] = true
		for topic := range claims {
			if a.byClaim[topic] == nil {
				a.byClaim[topic] = map[int32]*task{}
			}
			a.byClaim[topic][partition] = t
		}
		t.caughtUp = func() (bool, time.Time) { return a.caughtUp(t) }
	}
	n := len(a.tasks)
	a.mu.Unlock()
	b.t, b.err = t, err
	if err != nil {
		return nil, err
	}
	a.cfg.logger.Info("task added", slog.String("application_id", a.cfg.appID), slog.String("task", taskKey(id)),
		slog.Int("tasks", n), slog.Int("generation", int(sess.GenerationID())))
	return t, nil
}

// revokeCommitAttempts bounds the retries of a revoked task's last commit
// (100 ms apart).
const revokeCommitAttempts = 20

// revokeTask hands over a task revoked by a cooperative rebalance: nothing
// is processed or punctuated after its last commit, which covers what it
// produced (acknowledged first), and its stores are released (memory
// stores stay cached while the instance keeps a standby copy, persistent
// ones get a checkpoint). The other tasks are not touched. Called by each
// of the task's revoked claims; the first does the work.
func (a *App) revokeTask(sess sarama.ConsumerGroupSession, t *task) {
	a.handOverPunctuations(t) // a no-op for a task already closing
	t.mu.Lock()
	if t.closing || t.closed {
		t.mu.Unlock()
		return
	}
	t.closing = true
	t.mu.Unlock()
	// The last commit must land, or the next owner processes the task's
	// last records again: retry briefly (a commit racing the group's
	// generation change fails with ILLEGAL_GENERATION).
	for attempt := 0; ; attempt++ {
		a.commitMu.Lock()
		a.commitTasks(sess, []*task{t})
		a.commitMu.Unlock()
		t.mu.Lock()
		done := a.prepareCommit(t) == nil
		t.mu.Unlock()
		if t.lost.Load() {
			break // owned by another instance now: dropped, not committed
		}
		if done || attempt == revokeCommitAttempts || a.failure() != nil || a.life.ctx.Err() != nil {
			if !done {
				a.cfg.logger.Warn("last commit of a revoked task failed; its next owner processes its uncommitted records again",
					slog.String("application_id", a.cfg.appID), slog.String("task", taskKey(t.id)))
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The other tasks go on meanwhile: a.mu is taken only to unregister.
	a.closeTask(t)
	a.mu.Lock()
	delete(a.tasks, t.id)
	delete(a.active, t.id)
	n := len(a.tasks)
	for topic := range t.sources {
		delete(a.byClaim[topic], t.id.Partition)
	}
	a.mu.Unlock()
	a.claimMu.Lock()
	for topic := range t.sources {
		delete(a.claims[topic], t.id.Partition)
	}
	a.claimMu.Unlock()
	// A task revoked here may be assigned here as a standby now.
	a.syncStandbys()
	a.cfg.logger.Info("task revoked", slog.String("application_id", a.cfg.appID), slog.String("task", taskKey(t.id)),
		slog.Int("tasks", n), slog.Int("generation", int(sess.GenerationID())))
}

// closeTask closes t after its last commit, whose records it waits for:
// writes after the commit (a late punctuation) still reach the changelog
// before its stores are released and handed on.
func (a *App) closeTask(t *task) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lost.Load() {
		// Dropped dirty: the stores hold writes their changelogs lack.
		t.discardDirty()
		_ = t.closeLocked()
		for _, c := range t.stores {
			a.dropBackend(c)
		}
		return
	}
	t.flushStores()
	a.waitAcks(t)
	_ = t.closeLocked()
	for _, c := range t.stores {
		a.releaseBackend(c)
	}
}

// localTaskState is what this instance tells the assignor when it joins:
// the generation of its last assignment, the tasks it runs (or ran in its
// last session), and the changelog offset sums of its local copies of
// task stores — standby replicas, cached memory stores, pebble stores
// checkpointed in StateDir.
func (a *App) localTaskState() (int32, []TaskID, map[TaskID]int64) {
	storeSub := map[string]*subtopology{}
	for _, st := range a.top.subs {
		for _, s := range st.stores {
			storeSub[s] = st
		}
	}
	a.mu.RLock()
	active := make([]TaskID, 0, len(a.active)+len(a.building))
	for id := range a.active {
		active = append(active, id)
	}
	for id := range a.building {
		if !a.active[id] {
			active = append(active, id)
		}
	}
	parts := map[int]int32{}
	for k, v := range a.subParts {
		parts[k] = v
	}
	a.mu.RUnlock()
	copies := map[backendKey]int64{}
	a.cacheMu.Lock()
	for k, c := range a.cache {
		copies[k] = c.restoredTo
	}
	a.cacheMu.Unlock()
	for k, off := range a.standbyOffsets() {
		copies[k] = off
	}
	for name, spec := range a.top.stores {
		st := storeSub[name]
		if !spec.persistent || st == nil {
			continue
		}
		for p := int32(0); p < parts[st.id]; p++ {
			k := backendKey{name, p}
			if _, ok := copies[k]; ok {
				continue
			}
			if raw, err := os.ReadFile(a.storeDir(name, p) + ".checkpoint"); err == nil {
				if off, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
					copies[k] = off
				}
			}
		}
	}
	offsets := map[TaskID]int64{}
	for k, off := range copies {
		if st := storeSub[k.store]; st != nil {
			offsets[TaskID{Subtopology: st.id, Partition: k.partition}] += off
		}
	}
	return a.ownedGen.Load(), active, offsets
}
