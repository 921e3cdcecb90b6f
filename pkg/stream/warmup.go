package stream

// Warm-up replicas and probing rebalances (Kafka Streams' KIP-441, in this
// library's terms). Under the cooperative protocol a task moves to another
// instance only when that instance's local copy of the task's stores is
// caught up: at most AcceptableRecoveryLag changelog records behind. Until
// then the task keeps running where it runs, and the instance it is meant
// for gets a warm-up replica: a standby task (standby.go) that fills a
// copy from the changelogs. The instance holding warm-ups checks them every
// warmupCheckInterval and, once all have caught up (or
// ProbingRebalanceInterval after it got them), rejoins the group: this
// probing rebalance lets the assignor (assignor.go) move the tasks, whose
// new owner then restores only the tail its copy lacks. Tasks that do not
// move keep running through both rebalances.
//
// sarama has no public call to make a member of a cooperative session
// rejoin: requestRejoin signals the session's own rejoin channel, as a
// REBALANCE_IN_PROGRESS heartbeat answer does (see its comment).

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/IBM/sarama"
)

// Defaults of the warm-up options.
const (
	// DefaultAcceptableRecoveryLag is the default [AcceptableRecoveryLag]
	// (Kafka Streams' acceptable.recovery.lag).
	DefaultAcceptableRecoveryLag = 10000
	// DefaultMaxWarmupReplicas is the default [MaxWarmupReplicas] (Kafka
	// Streams' max.warmup.replicas).
	DefaultMaxWarmupReplicas = 2
	// DefaultProbingRebalanceInterval is the default
	// [ProbingRebalanceInterval]. Kafka Streams waits 10 minutes; here an
	// instance probes as soon as its warm-ups have caught up, checked
	// every quarter second, and this is only the longest it waits when they
	// do not.
	DefaultProbingRebalanceInterval = time.Minute
)

const (
	// warmupCheckInterval is how often an instance holding warm-up
	// replicas checks whether they have caught up.
	warmupCheckInterval = 250 * time.Millisecond
	// minProbeSpacing is the least time between two probing rebalances of
	// an instance, so that a leader that judges its copies differently
	// cannot make it rejoin in a loop.
	minProbeSpacing = 2 * time.Second
)

// warmupConfig holds the warm-up options.
type warmupConfig struct {
	acceptableLag int64
	maxWarmups    int
	probeInterval time.Duration
}

func defaultWarmupConfig() warmupConfig {
	return warmupConfig{
		acceptableLag: DefaultAcceptableRecoveryLag,
		maxWarmups:    DefaultMaxWarmupReplicas,
		probeInterval: DefaultProbingRebalanceInterval,
	}
}

func (w *warmupConfig) validate() []error {
	var errs []error
	if w.acceptableLag < 0 {
		errs = append(errs, fmt.Errorf("AcceptableRecoveryLag must not be negative, got %d", w.acceptableLag))
	}
	if w.maxWarmups < 1 {
		errs = append(errs, fmt.Errorf("MaxWarmupReplicas must be at least 1, got %d", w.maxWarmups))
	}
	if w.probeInterval <= 0 {
		errs = append(errs, fmt.Errorf("ProbingRebalanceInterval must be positive, got %v", w.probeInterval))
	}
	return errs
}

// AcceptableRecoveryLag is how many changelog records (summed over a task's
// stores) an instance's copy of a task's stores may lack for the task to be
// moved to it (Kafka Streams' acceptable.recovery.lag; default
// [DefaultAcceptableRecoveryLag], 10,000). The instance that runs a task
// counts as caught up. When the instance the balance wants a task on is
// further behind and another one is caught up, the task stays on (or goes
// to) the caught-up one, and the wanted instance gets a warm-up replica
// (see [MaxWarmupReplicas]) until a probing rebalance finds it caught up
// (see [ProbingRebalanceInterval]). It applies with
// [CooperativeRebalancing] only: under the eager protocol a task moves at
// once and its new owner restores what it lacks before it starts.
func AcceptableRecoveryLag(records int64) Opt {
	return optFunc(func(c *config) { c.warmup.acceptableLag = records })
}

// MaxWarmupReplicas bounds how many warm-up replicas the assignor hands out
// in one rebalance, over all instances (Kafka Streams'
// max.warmup.replicas; default [DefaultMaxWarmupReplicas], 2; at least 1).
// A warm-up replica is a standby task beyond [StandbyReplicas] that fills
// an instance's copy of a task's stores before the task moves there. More
// warm-ups move more tasks per probing rebalance, at the cost of more
// changelog reads at once; tasks beyond the bound stay with their owner
// until a later rebalance.
func MaxWarmupReplicas(n int) Opt {
	return optFunc(func(c *config) { c.warmup.maxWarmups = n })
}

// ProbingRebalanceInterval is the longest an instance holding warm-up
// replicas waits before it triggers a probing rebalance, in which the
// assignor moves the tasks whose warm-ups have caught up (Kafka Streams'
// probing.rebalance.interval.ms, there 10 minutes; default
// [DefaultProbingRebalanceInterval], 1 minute). The instance checks its
// warm-ups every 250 ms and triggers the rebalance as soon as all of them
// are within [AcceptableRecoveryLag] of their changelogs' ends, so with
// stores that restore in seconds a task moves seconds after the instance
// joined; the interval matters for warm-ups that stay behind (a changelog
// written faster than the copy follows it). Probing rebalances of one
// instance are at least 2 s apart. A probing rebalance is cooperative:
// tasks that do not move keep running.
func ProbingRebalanceInterval(d time.Duration) Opt {
	return optFunc(func(c *config) { c.warmup.probeInterval = d })
}

// warmupsEnabled tells whether the assignor plans warm-up replicas: with
// the cooperative protocol only, where a probing rebalance pauses nothing.
func (a *App) warmupsEnabled() bool { return a.cooperative() }

// changelogEnds returns, per task with stores, the sum of its changelogs'
// end offsets, for the leader's judgement of which copies are caught up.
// Tasks whose ends could not be listed are left out (every instance counts
// as caught up for them: they move at once, as without warm-ups).
func (a *App) changelogEnds(tasks []TaskID) map[TaskID]int64 {
	if a.client == nil {
		return nil // not running
	}
	subs := map[int]*subtopology{}
	for _, st := range a.top.subs {
		subs[st.id] = st
	}
	var parts []topicPartition
	for _, t := range tasks {
		if st := subs[t.Subtopology]; st != nil {
			for _, name := range st.stores {
				parts = append(parts, topicPartition{a.top.changelogTopic(a.cfg.appID, name), t.Partition})
			}
		}
	}
	ends := a.endOffsets(parts)
	out := map[TaskID]int64{}
	for _, t := range tasks {
		st := subs[t.Subtopology]
		if st == nil || len(st.stores) == 0 {
			continue
		}
		var sum int64
		ok := true
		for _, name := range st.stores {
			end, found := ends[topicPartition{a.top.changelogTopic(a.cfg.appID, name), t.Partition}]
			ok = ok && found
			sum += end
		}
		if ok {
			out[t] = sum
		} else {
			a.cfg.logger.Warn("a changelog's end offset could not be listed for the assignment; the task moves without a warm-up",
				slog.String("application_id", a.cfg.appID), slog.String("task", taskKey(t)))
		}
	}
	return out
}

type topicPartition struct {
	topic     string
	partition int32
}

// endOffsets lists the end offsets (high watermarks) of parts with one
// ListOffsets request per partition leader, sent at the same time. The
// partitions whose end could not be listed are missing from the result.
func (a *App) endOffsets(parts []topicPartition) map[topicPartition]int64 {
	if len(parts) == 0 {
		return nil
	}
	byBroker := map[*sarama.Broker][]topicPartition{}
	for _, x := range parts {
		if b, err := a.client.Leader(x.topic, x.partition); err == nil {
			byBroker[b] = append(byBroker[b], x)
		}
	}
	version := a.client.Config().Version
	out := map[topicPartition]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for b, ps := range byBroker {
		req := sarama.NewOffsetRequest(version)
		for _, x := range ps {
			req.AddBlock(x.topic, x.partition, sarama.OffsetNewest, 1)
		}
		wg.Go(func() {
			resp, err := b.GetAvailableOffsets(req)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, x := range ps {
				if block := resp.GetBlock(x.topic, x.partition); block != nil && block.Err == sarama.ErrNoError {
					out[x] = block.Offset
				}
			}
		})
	}
	wg.Wait()
	return out
}

// warmupLags returns how many changelog records this instance's copy of
// each warm-up task lacks, summed over its stores; a task is missing while
// its copy is not being filled (not started) or an end offset could not be
// listed.
func (a *App) warmupLags(tasks []TaskID) map[TaskID]int64 {
	copies := map[TaskID][]*standbyStore{}
	var parts []topicPartition
	a.sb.mu.Lock()
	for _, t := range tasks {
		if s := a.sb.running[t]; s != nil {
			copies[t] = s.stores
			for _, c := range s.stores {
				parts = append(parts, topicPartition{c.changelog, c.partition})
			}
		}
	}
	a.sb.mu.Unlock()
	ends := a.endOffsets(parts)
	out := map[TaskID]int64{}
	for t, stores := range copies {
		var lag int64
		ok := true
		for _, c := range stores {
			end, found := ends[topicPartition{c.changelog, c.partition}]
			ok = ok && found
			if pos := c.position.Load(); end > pos {
				lag += end - pos
			}
		}
		if ok {
			out[t] = lag
		}
	}
	return out
}

// errProbingRebalance is the reason a probing rebalance's JoinGroup gives.
var errProbingRebalance = errors.New("stream: probing rebalance: warm-up replicas caught up")

// warmupLoop checks this instance's warm-up replicas every
// warmupCheckInterval until the session ends (a goroutine of its own: the
// end offsets it lists must not hold up commits and punctuations).
func (a *App) warmupLoop(sess sarama.ConsumerGroupSession) {
	tick := time.NewTicker(warmupCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-sess.Context().Done():
			return
		case <-tick.C:
			a.checkWarmups(sess)
		}
	}
}

// checkWarmups triggers a probing rebalance when this instance holds
// warm-up replicas that have all caught up, or that it has held for
// ProbingRebalanceInterval (every warmupCheckInterval).
func (a *App) checkWarmups(sess sarama.ConsumerGroupSession) {
	a.sb.mu.Lock()
	warmups := make([]TaskID, 0, len(a.sb.warmup))
	for t := range a.sb.warmup {
		warmups = append(warmups, t)
	}
	since, probed, last := a.sb.warmupSince, a.sb.probed, a.sb.lastProbe
	a.sb.mu.Unlock()
	if len(warmups) == 0 || probed || time.Since(last) < minProbeSpacing {
		return
	}
	caughtUp := true
	lags := a.warmupLags(warmups)
	for _, t := range warmups {
		if lag, ok := lags[t]; !ok || lag > a.cfg.warmup.acceptableLag {
			caughtUp = false
			break
		}
	}
	if !caughtUp && time.Since(since) < a.cfg.warmup.probeInterval {
		return
	}
	a.sb.mu.Lock()
	a.sb.probed = true
	a.sb.lastProbe = time.Now()
	a.sb.warmupSince = a.sb.lastProbe // the next probe without catching up is an interval away
	a.sb.mu.Unlock()
	a.sb.probes.Add(1)
	if !requestRejoin(sess, errProbingRebalance) {
		a.cfg.logger.Warn("probing rebalance not possible with this sarama version; warm-up replicas stay until the next rebalance",
			slog.String("application_id", a.cfg.appID))
		return
	}
	a.cfg.logger.Info("probing rebalance", slog.String("application_id", a.cfg.appID), slog.Any("warmups", taskKeys(warmups)),
		slog.Bool("caught_up", caughtUp), slog.Int("generation", int(sess.GenerationID())))
}

// requestRejoin makes this member of a cooperative session rejoin the group
// while its claims go on, and reports whether it could. sarama (v1.61)
// rejoins a cooperative session when a value arrives on the session's
// unexported rejoin channel — its heartbeat loop sends one on
// REBALANCE_IN_PROGRESS — but offers no public call for it, so the
// channel is reached by reflection. The rejoin's metadata differs from the
// last join's (subscriptionInfo.Probe), so the coordinator starts a
// rebalance even when this member is not the leader. It returns false when
// sess is not a sarama session of that shape (another sarama version).
func requestRejoin(sess sarama.ConsumerGroupSession, cause error) bool {
	v := reflect.ValueOf(sess)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	f := v.Elem().FieldByName("rejoin")
	if !f.IsValid() || f.Type() != reflect.TypeFor[chan error]() {
		return false
	}
	ch := *(*chan error)(unsafe.Pointer(f.UnsafeAddr()))
	if ch == nil {
		return false
	}
	select {
	case ch <- cause:
	default: // a rejoin is pending already
	}
	return true
}
