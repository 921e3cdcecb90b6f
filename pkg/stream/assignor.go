package stream

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/IBM/sarama"
)

// The task assignor (Kafka Streams' StreamsPartitionAssignor and
// HighAvailabilityTaskAssignor, much simplified).
//
// A task is partition p of a sub-topology: partition p of every one of its
// source topics goes to the same instance, so the task sees all its
// co-partitioned input. The assignment is
//
//   - balanced: every instance gets ⌊T/N⌋ or ⌈T/N⌉ of the T active tasks;
//   - sticky: a task stays with the instance that runs it, as far as the
//     balance allows, so a rebalance moves as few tasks as it can;
//   - warm: a task without a running owner (its instance died or left)
//     goes to the instance with the most recent local copy of its stores —
//     a standby replica, a cached store, a pebble checkpoint — measured by
//     the sum of the changelog offsets the copy reached, which every
//     instance sends in its join metadata (as Kafka Streams' task offset
//     sums);
//   - incremental under the cooperative protocol: a task that moves from a
//     running instance to another is first only revoked from its owner,
//     which commits and closes it and rejoins at once; the next rebalance
//     gives it to the new owner. Tasks that do not move keep running
//     throughout;
//   - caught up before it moves, under the cooperative protocol (Kafka
//     Streams' KIP-441, see warmup.go): an instance is caught up on a task
//     when it runs it, or when its copy lacks at most AcceptableRecoveryLag
//     changelog records (the leader lists the changelogs' ends). When the
//     balance puts a task on an instance that is not caught up while
//     another one is, the task stays with its owner (or, without one, goes
//     to the least loaded caught-up instance) and the intended instance
//     gets a warm-up replica, up to MaxWarmupReplicas per plan; once the
//     warm-up has caught up, the instance triggers a probing rebalance and
//     the same balance now moves the task. An owner with more tasks than
//     its share first gives up those that an instance short of its share
//     holds a caught-up copy of. Unlike Kafka Streams, a task whose owner
//     runs it stays there rather than swapping to a caught-up standby:
//     here every move pauses the task for a rebalance round.
//
// With [StandbyReplicas](n) each task also gets up to n standby instances
// other than its active one, the warmest first, spread evenly; they are sent
// to each member in its assignment's user data.

// subscriptionInfo is what an instance sends in its JoinGroup metadata.
type subscriptionInfo struct {
	// Version of the encoding (1).
	Version int `json:"v"`
	// Generation is the group generation in which Active was assigned.
	Generation int32 `json:"g,omitempty"`
	// Active are the tasks the instance runs ("<sub>_<partition>").
	Active []string `json:"a,omitempty"`
	// Offsets are the changelog offset sums of the instance's local copies
	// of tasks' stores (standby replicas, cached or checkpointed stores).
	Offsets map[string]int64 `json:"o,omitempty"`
	// Probe counts the instance's probing rebalances, so that a probing
	// rejoin always changes the metadata (the coordinator rebalances on a
	// rejoin of a member that is not the leader only if it did).
	Probe int64 `json:"p,omitempty"`
	// Endpoint is the instance's ApplicationServer ("" without one).
	Endpoint string `json:"e,omitempty"`
}

// assignmentInfo is what an instance receives in its SyncGroup assignment.
type assignmentInfo struct {
	Version int      `json:"v"`
	Standby []string `json:"s,omitempty"`
	// Warmup are warm-up replicas: standbys beyond StandbyReplicas for
	// tasks meant to move to the instance once its copy has caught up.
	Warmup []string `json:"w,omitempty"`
	// Hosts are, per advertised endpoint, the tasks its instance runs, and
	// StandbyHosts those it keeps standby copies of (for interactive
	// queries across instances, hosts.go).
	Hosts        map[string][]string `json:"h,omitempty"`
	StandbyHosts map[string][]string `json:"sh,omitempty"`
}

func taskKey(id TaskID) string { return fmt.Sprintf("%d_%d", id.Subtopology, id.Partition) }

func parseTaskKey(s string) (TaskID, bool) {
	sub, p, ok := strings.Cut(s, "_")
	if !ok {
		return TaskID{}, false
	}
	n, err1 := strconv.Atoi(sub)
	q, err2 := strconv.ParseInt(p, 10, 32)
	if err1 != nil || err2 != nil || n < 0 || q < 0 {
		return TaskID{}, false
	}
	return TaskID{Subtopology: n, Partition: int32(q)}, true
}

// memberState is one group member as the assignor sees it.
type memberState struct {
	id         string
	generation int32
	// active: the tasks the member runs now (by its own account).
	active map[TaskID]bool
	// owned: the tasks whose partitions the member holds under the
	// cooperative protocol (sarama's OwnedPartitions); they must be revoked
	// before another member gets them.
	owned map[TaskID]bool
	// offsets: changelog offset sums of the member's local copies.
	offsets map[TaskID]int64
}

// taskAssignment is the assignor's result for one member.
type taskAssignment struct {
	active  []TaskID
	standby []TaskID
	warmup  []TaskID
}

// assignParams are the settings of one plan.
type assignParams struct {
	standbys int // StandbyReplicas
	// cooperative withholds the tasks that move away from a member still
	// owning them.
	cooperative bool
	// ends are, per task with stores, the sums of its changelogs' end
	// offsets. nil turns warm-ups off: every member counts as caught up.
	ends          map[TaskID]int64
	acceptableLag int64 // AcceptableRecoveryLag
	maxWarmups    int   // MaxWarmupReplicas
}

// assignTasks computes the assignment of tasks to members (see the comment
// at the top of this file).
func assignTasks(tasks []TaskID, members []*memberState, p assignParams) map[string]*taskAssignment {
	standbys, cooperative := p.standbys, p.cooperative
	out := map[string]*taskAssignment{}
	if len(members) == 0 {
		return out
	}
	tasks = slices.Clone(tasks)
	slices.SortFunc(tasks, compareTaskID)
	byID := map[string]*memberState{}
	for _, m := range members {
		byID[m.id] = m
		out[m.id] = &taskAssignment{}
	}
	// The current owner of each task: the claim of the latest generation
	// wins (a member that was dropped from the group may still think it
	// owns its old tasks).
	owner := map[TaskID]string{}
	for _, t := range tasks {
		best := ""
		for _, m := range members {
			if !m.active[t] && !m.owned[t] {
				continue
			}
			if b := byID[best]; b == nil || m.generation > b.generation || (m.generation == b.generation && m.id < best) {
				best = m.id
			}
		}
		if best != "" {
			owner[t] = best
		}
	}
	// Capacities: the members with the most tasks now get the larger share.
	order := slices.Clone(members)
	nowHas := func(m *memberState) int {
		n := 0
		for _, o := range owner {
			if o == m.id {
				n++
			}
		}
		return n
	}
	counts := map[string]int{}
	for _, m := range order {
		counts[m.id] = nowHas(m)
	}
	sort.SliceStable(order, func(i, j int) bool {
		if counts[order[i].id] != counts[order[j].id] {
			return counts[order[i].id] > counts[order[j].id]
		}
		return order[i].id < order[j].id
	})
	capacity := map[string]int{}
	base, extra := len(tasks)/len(members), len(tasks)%len(members)
	for i, m := range order {
		capacity[m.id] = base
		if i < extra {
			capacity[m.id]++
		}
	}
	// copyCaughtUp: m's local copy of t lacks at most the acceptable lag
	// (a member without a copy lacks the whole changelog). Tasks without
	// stores or known ends have no copies to judge.
	copyCaughtUp := func(m *memberState, t TaskID) bool {
		end, ok := p.ends[t]
		return !ok || end-m.offsets[t] <= p.acceptableLag
	}
	caughtUp := func(m *memberState, t TaskID) bool { return owner[t] == m.id || copyCaughtUp(m, t) }
	// releasable: a member short of its share holds a caught-up copy of
	// t, so t can move there without a long restore.
	releasable := func(t TaskID, o string) bool {
		if _, ok := p.ends[t]; !ok {
			return false
		}
		for _, m := range members {
			if m.id != o && counts[m.id] < capacity[m.id] && copyCaughtUp(m, t) {
				return true
			}
		}
		return false
	}
	assigned := map[TaskID]string{}
	load := map[string]int{}
	// Sticky: owners keep their tasks up to their capacity, first those
	// no member short of its share has a caught-up copy of.
	for _, keepReleasable := range []bool{false, true} {
		for _, t := range tasks {
			if _, done := assigned[t]; done {
				continue
			}
			if o, ok := owner[t]; ok && load[o] < capacity[o] && (keepReleasable || !releasable(t, o)) {
				assigned[t] = o
				load[o]++
			}
		}
	}
	// The rest go to the warmest member with room, then the least loaded.
	for _, t := range tasks {
		if _, ok := assigned[t]; ok {
			continue
		}
		var best *memberState
		for _, m := range order {
			if load[m.id] >= capacity[m.id] {
				continue
			}
			if best == nil || warmer(m, best, t, load) {
				best = m
			}
		}
		assigned[t] = best.id
		load[best.id]++
	}
	// Caught up before it moves (KIP-441): a task meant for a member that
	// is not caught up on it stays with its owner, or goes to the least
	// loaded caught-up member, while one exists; the intended member gets
	// a warm-up replica while the plan has some left.
	warmup := map[TaskID]string{}
	if p.ends != nil {
		left := p.maxWarmups
		for _, t := range tasks {
			dest := byID[assigned[t]]
			if caughtUp(dest, t) {
				continue
			}
			src := byID[owner[t]]
			if src == nil {
				for _, m := range order {
					if m != dest && caughtUp(m, t) && (src == nil || load[m.id] < load[src.id] ||
						(load[m.id] == load[src.id] && warmer(m, src, t, load))) {
						src = m
					}
				}
			}
			if src == nil {
				continue // nobody is caught up: the intended member restores it
			}
			assigned[t] = src.id
			load[src.id]++
			load[dest.id]--
			if left > 0 {
				warmup[t] = dest.id
				out[dest.id].warmup = append(out[dest.id].warmup, t)
				left--
			}
		}
	}
	// Cooperative: a task still held by another member is revoked from it
	// first; its new owner gets it in the follow-up rebalance.
	heldBy := map[TaskID]string{}
	if cooperative {
		for _, t := range tasks {
			for _, m := range members {
				if m.id != assigned[t] && m.owned[t] {
					heldBy[t] = m.id
				}
			}
		}
	}
	// Standby replicas: the warmest members other than the active one
	// (and the one warming up), then the ones with the fewest standbys. A
	// task on its way to a new owner has no active one this round: its
	// next owner keeps (or gets) a copy, also without StandbyReplicas (a
	// warm-up that has caught up goes on until the task starts), and its
	// holder does not.
	if standbys > 0 || len(heldBy) > 0 {
		sload := map[string]int{}
		for _, t := range tasks {
			taken := map[string]bool{assigned[t]: true}
			if w, ok := warmup[t]; ok {
				taken[w] = true
			}
			r := 0
			if h, ok := heldBy[t]; ok {
				taken[h] = true
				out[assigned[t]].standby = append(out[assigned[t]].standby, t)
				sload[assigned[t]]++
				r++
			}
			for ; r < standbys; r++ {
				var best *memberState
				for _, m := range order {
					if taken[m.id] {
						continue
					}
					if best == nil || warmer(m, best, t, sload) {
						best = m
					}
				}
				if best == nil {
					break
				}
				taken[best.id] = true
				sload[best.id]++
				out[best.id].standby = append(out[best.id].standby, t)
			}
		}
	}
	for _, t := range tasks {
		if _, held := heldBy[t]; !held {
			out[assigned[t]].active = append(out[assigned[t]].active, t)
		}
	}
	return out
}

// warmer tells whether m is a better home for t than best: a more recent
// local copy of t's stores, then a lighter load, then the smaller id.
func warmer(m, best *memberState, t TaskID, load map[string]int) bool {
	mo, mok := m.offsets[t]
	bo, bok := best.offsets[t]
	if mok != bok {
		return mok
	}
	if mok && mo != bo {
		return mo > bo
	}
	if load[m.id] != load[best.id] {
		return load[m.id] < load[best.id]
	}
	return m.id < best.id
}

func compareTaskID(a, b TaskID) int {
	if a.Subtopology != b.Subtopology {
		return a.Subtopology - b.Subtopology
	}
	return int(a.Partition) - int(b.Partition)
}

// taskBalancer is the group's sarama.BalanceStrategy: it plans with
// assignTasks, takes part in the cooperative protocol (in at-least-once
// mode, see [ExactlyOnce] for why not with transactions), sends each
// instance's tasks and local copies in its join metadata and each member's
// standby tasks in its assignment.
type taskBalancer struct {
	a *App

	// ends lists the changelogs' end offsets for a plan (nil:
	// App.changelogEnds; tests replace it).
	ends func(tasks []TaskID) map[TaskID]int64

	mu   sync.Mutex
	plan map[string]*taskAssignment // member id -> its part of the last plan (leader)
	// hosts and standbyHosts are the last plan's endpoints (see
	// assignmentInfo), sent to every member.
	hosts, standbyHosts map[string][]string
}

// Name is the protocol name the group agrees on.
func (b *taskBalancer) Name() string { return "stream-tasks" }

// SupportedProtocols: cooperative in at-least-once mode, eager with
// transactions. (Under exactly-once one transaction covers every task of
// the instance, and the periodic commit of the tasks that keep running
// during a rebalance would be a transactional offset commit of a generation
// the coordinator is replacing: it fails, and a failed transaction
// restarts the instance — the very pause the cooperative protocol avoids.)
func (b *taskBalancer) SupportedProtocols() []sarama.RebalanceProtocol {
	if !b.cooperative() {
		return []sarama.RebalanceProtocol{sarama.RebalanceProtocolEager}
	}
	return []sarama.RebalanceProtocol{sarama.RebalanceProtocolCooperative}
}

func (b *taskBalancer) cooperative() bool { return b.a.cooperative() }

// SubscriptionUserData encodes the instance's active tasks and the offset
// sums of its local store copies for the leader's plan.
func (b *taskBalancer) SubscriptionUserData([]string) ([]byte, error) {
	gen, active, offsets := b.a.localTaskState()
	info := subscriptionInfo{Version: 1, Generation: gen, Offsets: map[string]int64{}, Probe: b.a.sb.probes.Load(), Endpoint: b.a.cfg.group.endpoint}
	for _, t := range active {
		info.Active = append(info.Active, taskKey(t))
	}
	for t, o := range offsets {
		info.Offsets[taskKey(t)] = o
	}
	return json.Marshal(info)
}

// OnAssignment receives this member's standby tasks and warm-up replicas.
func (b *taskBalancer) OnAssignment(asg *sarama.ConsumerGroupMemberAssignment, generation int32) {
	var info assignmentInfo
	if asg != nil && len(asg.UserData) > 0 {
		_ = json.Unmarshal(asg.UserData, &info)
	}
	parse := func(keys []string) []TaskID {
		var out []TaskID
		for _, s := range keys {
			if t, ok := parseTaskKey(s); ok {
				out = append(out, t)
			}
		}
		return out
	}
	var active map[string][]int32
	if asg != nil {
		active = asg.Topics
	}
	b.a.assignedStandbys(parse(info.Standby), parse(info.Warmup), generation, active)
	b.a.noteAssignment(active)
	hosts := map[TaskID]string{}
	for t, es := range decodeHosts(info.Hosts) {
		hosts[t] = es[0]
	}
	b.a.hosts.set(hosts, decodeHosts(info.StandbyHosts))
}

// Plan assigns the tasks of the topics' partitions to the members.
func (b *taskBalancer) Plan(members map[string]sarama.ConsumerGroupMemberMetadata, topics map[string][]int32) (sarama.BalanceStrategyPlan, error) {
	appID := b.a.cfg.appID
	// Which task a source partition belongs to.
	partTask := map[string]int{} // resolved topic -> sub-topology
	var tasks []TaskID
	for _, st := range b.a.top.subs {
		for _, s := range st.sources {
			partTask[resolveTopic(appID, s)] = st.id
		}
		for _, p := range topics[resolveTopic(appID, st.sources[0])] {
			tasks = append(tasks, TaskID{Subtopology: st.id, Partition: p})
		}
	}
	states := make([]*memberState, 0, len(members))
	for id, meta := range members {
		m := &memberState{id: id, generation: meta.GenerationID, active: map[TaskID]bool{}, owned: map[TaskID]bool{}, offsets: map[TaskID]int64{}}
		for _, op := range meta.OwnedPartitions {
			sub, ok := partTask[op.Topic]
			if !ok {
				continue
			}
			for _, p := range op.Partitions {
				m.owned[TaskID{Subtopology: sub, Partition: p}] = true
			}
		}
		var info subscriptionInfo
		if len(meta.UserData) > 0 && json.Unmarshal(meta.UserData, &info) == nil && info.Version >= 1 {
			if info.Generation > m.generation {
				m.generation = info.Generation
			}
			for _, s := range info.Active {
				if t, ok := parseTaskKey(s); ok {
					m.active[t] = true
				}
			}
			for s, o := range info.Offsets {
				if t, ok := parseTaskKey(s); ok {
					m.offsets[t] = o
				}
			}
		}
		states = append(states, m)
	}
	slices.SortFunc(states, func(x, y *memberState) int { return strings.Compare(x.id, y.id) })
	endpoints := map[string]string{} // member id -> advertised endpoint
	for id, meta := range members {
		var info subscriptionInfo
		if len(meta.UserData) > 0 && json.Unmarshal(meta.UserData, &info) == nil && info.Endpoint != "" {
			endpoints[id] = info.Endpoint
		}
	}
	params := assignParams{standbys: b.a.cfg.group.standbyReplicas, cooperative: b.cooperative()}
	if b.a.warmupsEnabled() {
		ends := b.ends
		if ends == nil {
			ends = b.a.changelogEnds
		}
		params.ends = ends(tasks)
		params.acceptableLag, params.maxWarmups = b.a.cfg.warmup.acceptableLag, b.a.cfg.warmup.maxWarmups
	}
	result := assignTasks(tasks, states, params)
	plan := sarama.BalanceStrategyPlan{}
	subs := map[int]*subtopology{}
	for _, st := range b.a.top.subs {
		subs[st.id] = st
	}
	for id, asg := range result {
		// sarama sends user data (standbys, warm-ups) only to the members
		// in the plan: a member without active tasks needs an entry too.
		plan[id] = map[string][]int32{}
		for _, t := range asg.active {
			for _, s := range subs[t.Subtopology].sources {
				plan.Add(id, resolveTopic(appID, s), t.Partition)
			}
		}
		if len(asg.warmup) > 0 {
			b.a.cfg.logger.Info("warm-up replicas assigned", slog.String("application_id", appID), slog.String("member", id),
				slog.Any("warmups", taskKeys(asg.warmup)))
		}
	}
	active := map[TaskID]string{}
	standbyHosts := map[string][]string{}
	for id, asg := range result {
		e := endpoints[id]
		if e == "" {
			continue
		}
		for _, t := range asg.active {
			active[t] = e
		}
		for _, t := range asg.standby {
			standbyHosts[e] = append(standbyHosts[e], taskKey(t))
		}
	}
	b.mu.Lock()
	b.plan = result
	b.hosts, b.standbyHosts = encodeHosts(active), standbyHosts
	b.mu.Unlock()
	return plan, nil
}

func taskKeys(ts []TaskID) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = taskKey(t)
	}
	return out
}

// AssignmentData sends a member its standby tasks and warm-up replicas.
func (b *taskBalancer) AssignmentData(memberID string, _ map[string][]int32, _ int32) ([]byte, error) {
	b.mu.Lock()
	asg := b.plan[memberID]
	info := assignmentInfo{Version: 1, Hosts: b.hosts, StandbyHosts: b.standbyHosts}
	b.mu.Unlock()
	if asg != nil {
		info.Standby, info.Warmup = taskKeys(asg.standby), taskKeys(asg.warmup)
	}
	return json.Marshal(info)
}
