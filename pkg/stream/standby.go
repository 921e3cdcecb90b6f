package stream

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/pkg/stream/internal/kv"
)

// Standby replicas (Kafka Streams' StandbyTask). A standby task keeps a warm
// copy of another instance's task's stores by following their changelog
// partitions; it processes nothing. The assignor places standbys (see
// assignor.go), prefers the warmest copy when a task needs a new owner, and
// sends each instance its standbys in its assignment. When a standby's task
// becomes active here, the standby stops and hands its copy over as a cached
// memory store or a checkpointed pebble store, so the task restores only
// the changelog's tail from the copy's offset. When a task stops being
// active here while it is assigned as a standby, its stores carry on as
// the standby's copy.

// StandbyReplicas sets how many other instances keep a warm copy of each
// task's stores (Kafka Streams' num.standby.replicas; default 0). Each
// standby follows the task's changelog topics and processes nothing; when
// the task's instance dies or leaves, the task goes to the instance with the
// warmest copy, which restores only the changelog records the copy has not
// seen instead of the whole changelog. It costs each standby instance the
// memory (memory stores) or disk (persistent stores, in StateDir) of the
// copy, and a fetch stream per changelog partition. Standbys are placed
// only on instances other than the task's own, so n above the number of
// instances minus one gives fewer copies.
func StandbyReplicas(n int) Opt {
	return optFunc(func(c *config) { c.group.standbyReplicas = n })
}

// standbyTask follows the changelogs of one task's stores.
type standbyTask struct {
	id     TaskID
	stores []*standbyStore
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// standbyStore is the copy of one store, updated by one goroutine.
type standbyStore struct {
	name      string
	changelog string
	partition int32
	persist   bool
	backend   kv.Store
	position  atomic.Int64 // next changelog offset to apply
}

// standbys is the standby state of an App.
type standbys struct {
	mu      sync.Mutex
	want    map[TaskID]bool // assigned standbys, warm-ups included
	running map[TaskID]*standbyTask
	// warmup are the assigned warm-up replicas (warmup.go), since when
	// this instance holds warm-ups, whether it probed for this assignment
	// and when it last did.
	warmup      map[TaskID]bool
	warmupSince time.Time
	probed      bool
	lastProbe   time.Time
	// probes counts the probing rebalances this instance asked for; it
	// goes into the join metadata (subscriptionInfo.Probe).
	probes atomic.Int64
}

// assignedStandbys is called with this member's standby tasks and warm-up
// replicas of a new assignment (before its active tasks change). It drops
// cached memory stores of tasks that are now neither active nor standby
// here, and starts and stops standby tasks (a warm-up is one).
func (a *App) assignedStandbys(standby, warmup []TaskID, generation int32, active map[string][]int32) {
	a.ownedGen.Store(generation)
	keep := map[TaskID]bool{}
	a.sb.mu.Lock()
	a.sb.want = map[TaskID]bool{}
	for _, t := range standby {
		a.sb.want[t] = true
		keep[t] = true
	}
	had := len(a.sb.warmup) > 0
	a.sb.warmup = map[TaskID]bool{}
	for _, t := range warmup {
		a.sb.want[t] = true
		a.sb.warmup[t] = true
		keep[t] = true
	}
	if len(warmup) > 0 && !had {
		a.sb.warmupSince = time.Now()
	}
	a.sb.probed = false
	a.sb.mu.Unlock()
	for _, st := range a.top.subs {
		for _, p := range active[resolveTopic(a.cfg.appID, st.sources[0])] {
			keep[TaskID{Subtopology: st.id, Partition: p}] = true
		}
	}
	a.syncStandbys()
	storeSub := a.storeSubtopologies()
	a.cacheMu.Lock()
	for k, c := range a.cache {
		if !keep[TaskID{Subtopology: storeSub[k.store], Partition: k.partition}] {
			_ = c.b.Close()
			delete(a.cache, k)
		}
	}
	a.cacheMu.Unlock()
}

func (a *App) storeSubtopologies() map[string]int {
	out := map[string]int{}
	for _, st := range a.top.subs {
		for _, s := range st.stores {
			out[s] = st.id
		}
	}
	return out
}

// syncStandbys stops the standby tasks no longer assigned or now active
// here, and starts the assigned ones whose task is not active here (a task
// revoked from this instance becomes its standby once it is closed: this
// runs again then).
func (a *App) syncStandbys() {
	if a.life == nil || a.life.ctx.Err() != nil || a.consumer == nil {
		return
	}
	a.mu.RLock()
	busy := map[TaskID]bool{}
	for id := range a.tasks {
		busy[id] = true
	}
	for id := range a.building {
		busy[id] = true
	}
	a.mu.RUnlock()
	a.sb.mu.Lock()
	defer a.sb.mu.Unlock()
	for id, s := range a.sb.running {
		if !a.sb.want[id] {
			a.stopStandby(s)
			delete(a.sb.running, id)
		}
	}
	for id := range a.sb.want {
		if a.sb.running[id] != nil || busy[id] {
			continue
		}
		s, err := a.startStandby(id)
		if err != nil {
			a.cfg.logger.Warn("standby task not started", slog.String("application_id", a.cfg.appID), slog.String("task", taskKey(id)), slog.Any("err", err))
			continue
		}
		a.sb.running[id] = s
	}
}

// startStandby opens the copies of the task's stores — from the cache, a
// pebble checkpoint, or empty — and follows their changelogs.
func (a *App) startStandby(id TaskID) (*standbyTask, error) {
	var st *subtopology
	for _, s := range a.top.subs {
		if s.id == id.Subtopology {
			st = s
		}
	}
	if st == nil {
		return nil, fmt.Errorf("stream: no sub-topology %d", id.Subtopology)
	}
	ctx, cancel := context.WithCancel(a.life.ctx)
	s := &standbyTask{id: id, cancel: cancel}
	for _, name := range st.stores {
		spec := a.top.stores[name]
		c := &standbyStore{name: name, changelog: a.top.changelogTopic(a.cfg.appID, name), partition: id.Partition, persist: spec.persistent}
		key := backendKey{name, id.Partition}
		a.cacheMu.Lock()
		cached, ok := a.cache[key]
		delete(a.cache, key)
		a.cacheMu.Unlock()
		var from int64
		switch {
		case ok:
			c.backend, from = cached.b, cached.restoredTo
		case !spec.persistent:
			c.backend = kv.NewMemory()
		default:
			dir := a.storeDir(name, id.Partition)
			b, clean, err := kv.OpenPebble(dir, kv.PebbleLogger(a.cfg.logger.With("application_id", a.cfg.appID, "store", name, "partition", id.Partition)))
			if err != nil {
				a.stopStandby(s)
				return nil, err
			}
			c.backend = b
			if clean {
				if raw, err := os.ReadFile(dir + ".checkpoint"); err == nil {
					from, _ = strconv.ParseInt(string(raw), 10, 64)
				}
			}
			_ = os.Remove(dir + ".checkpoint")
		}
		c.position.Store(from)
		s.stores = append(s.stores, c)
	}
	for _, c := range s.stores {
		s.wg.Go(func() { a.followChangelog(ctx, c) })
	}
	a.cfg.logger.Debug("standby task started", slog.String("application_id", a.cfg.appID), slog.String("task", taskKey(id)))
	return s, nil
}

// followChangelog applies the changelog partition's records to the copy
// until ctx ends.
func (a *App) followChangelog(ctx context.Context, c *standbyStore) {
	from := c.position.Load()
	oldest, err := a.client.GetOffset(c.changelog, c.partition, sarama.OffsetOldest)
	if err == nil && from < oldest {
		from = oldest
		c.position.Store(from)
	}
	var pc sarama.PartitionConsumer
	for {
		pc, err = a.consumer.ConsumePartition(c.changelog, c.partition, from)
		if err == nil {
			break
		}
		a.cfg.logger.Debug("standby: consume changelog", slog.String("changelog", c.changelog), slog.Int("partition", int(c.partition)), slog.Any("err", err))
		select {
		case <-ctx.Done():
			return
		case <-a.life.expired:
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	// Not waiting for sarama to confirm the end of the subscription (up to
	// a fetch round): a promotion to an active task waits for this.
	defer closeInBackground(pc)
	applied := a.met.standby.WithLabelValues(c.name)
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-pc.Messages():
			if !ok {
				return
			}
			if m.Value == nil {
				err = c.backend.Delete(m.Key)
			} else {
				err = c.backend.Put(m.Key, m.Value)
			}
			if err != nil {
				a.cfg.logger.Warn("standby: applying changelog record", slog.String("changelog", c.changelog), slog.Any("err", err))
				return
			}
			c.position.Store(m.Offset + 1)
			applied.Inc()
		case e, ok := <-pc.Errors():
			if ok {
				a.cfg.logger.Debug("standby: changelog fetch", slog.String("changelog", c.changelog), slog.Any("err", e))
			}
		}
	}
}

// stopStandby stops following and keeps each copy for a later promotion:
// memory stores in the cache, pebble stores closed with a checkpoint. The
// caller holds sb.mu.
func (a *App) stopStandby(s *standbyTask) {
	s.cancel()
	s.wg.Wait()
	for _, c := range s.stores {
		off := c.position.Load()
		if !c.persist {
			a.cacheMu.Lock()
			a.cache[backendKey{c.name, c.partition}] = &cachedBackend{b: c.backend, restoredTo: off}
			a.cacheMu.Unlock()
			continue
		}
		dir := a.storeDir(c.name, c.partition)
		if err := c.backend.Close(); err != nil {
			continue
		}
		_ = os.WriteFile(dir+".checkpoint", []byte(strconv.FormatInt(off, 10)), 0o644)
	}
}

// stopStandbys stops every standby task (runtime teardown).
func (a *App) stopStandbys() {
	a.sb.mu.Lock()
	defer a.sb.mu.Unlock()
	for id, s := range a.sb.running {
		a.stopStandby(s)
		delete(a.sb.running, id)
	}
	a.sb.want = nil
	a.sb.warmup = nil
}

// standbyOffsets are the running standbys' copy positions.
func (a *App) standbyOffsets() map[backendKey]int64 {
	a.sb.mu.Lock()
	defer a.sb.mu.Unlock()
	out := map[backendKey]int64{}
	for _, s := range a.sb.running {
		for _, c := range s.stores {
			out[backendKey{c.name, c.partition}] = c.position.Load()
		}
	}
	return out
}
