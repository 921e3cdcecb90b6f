package stream

import (
	"encoding/json"
	"fmt"
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
//     throughout.
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
}

// assignmentInfo is what an instance receives in its SyncGroup assignment.
type assignmentInfo struct {
	Version int      `json:"v"`
	Standby []string `json:"s,omitempty"`
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
}

// assignTasks computes the assignment of tasks to members (see the comment
// at the top of this file). cooperative withholds the tasks that move away
// from a member still owning them.
func assignTasks(tasks []TaskID, members []*memberState, standbys int, cooperative bool) map[string]*taskAssignment {
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
	assigned := map[TaskID]string{}
	load := map[string]int{}
	// Sticky: owners keep their tasks up to their capacity.
	for _, t := range tasks {
		if o, ok := owner[t]; ok && load[o] < capacity[o] {
			assigned[t] = o
			load[o]++
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
	// Standby replicas: the warmest members other than the active one,
	// then the ones with the fewest standbys. A task on its way to a new
	// owner has no active one this round: its next owner keeps (or gets)
	// a copy and its holder does not.
	if standbys > 0 {
		sload := map[string]int{}
		for _, t := range tasks {
			taken := map[string]bool{assigned[t]: true}
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

	mu      sync.Mutex
	standby map[string][]TaskID // member id -> standby tasks of the last plan (leader)
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
	info := subscriptionInfo{Version: 1, Generation: gen, Offsets: map[string]int64{}}
	for _, t := range active {
		info.Active = append(info.Active, taskKey(t))
	}
	for t, o := range offsets {
		info.Offsets[taskKey(t)] = o
	}
	return json.Marshal(info)
}

// OnAssignment receives this member's standby tasks.
func (b *taskBalancer) OnAssignment(asg *sarama.ConsumerGroupMemberAssignment, generation int32) {
	var info assignmentInfo
	if asg != nil && len(asg.UserData) > 0 {
		_ = json.Unmarshal(asg.UserData, &info)
	}
	var standby []TaskID
	for _, s := range info.Standby {
		if t, ok := parseTaskKey(s); ok {
			standby = append(standby, t)
		}
	}
	var active map[string][]int32
	if asg != nil {
		active = asg.Topics
	}
	b.a.assignedStandbys(standby, generation, active)
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
	result := assignTasks(tasks, states, b.a.cfg.group.standbyReplicas, b.cooperative())
	plan := sarama.BalanceStrategyPlan{}
	standby := map[string][]TaskID{}
	subs := map[int]*subtopology{}
	for _, st := range b.a.top.subs {
		subs[st.id] = st
	}
	for id, asg := range result {
		for _, t := range asg.active {
			for _, s := range subs[t.Subtopology].sources {
				plan.Add(id, resolveTopic(appID, s), t.Partition)
			}
		}
		standby[id] = asg.standby
	}
	b.mu.Lock()
	b.standby = standby
	b.mu.Unlock()
	return plan, nil
}

// AssignmentData sends a member its standby tasks.
func (b *taskBalancer) AssignmentData(memberID string, _ map[string][]int32, _ int32) ([]byte, error) {
	b.mu.Lock()
	standby := b.standby[memberID]
	b.mu.Unlock()
	info := assignmentInfo{Version: 1}
	for _, t := range standby {
		info.Standby = append(info.Standby, taskKey(t))
	}
	return json.Marshal(info)
}
