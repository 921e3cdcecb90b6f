package stream

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func tasksOf(sub int, n int32) []TaskID {
	out := make([]TaskID, 0, n)
	for p := int32(0); p < n; p++ {
		out = append(out, TaskID{Subtopology: sub, Partition: p})
	}
	return out
}

func member(id string, gen int32, active ...int32) *memberState {
	m := &memberState{id: id, generation: gen, active: map[TaskID]bool{}, owned: map[TaskID]bool{}, offsets: map[TaskID]int64{}}
	for _, p := range active {
		m.active[TaskID{Partition: p}] = true
	}
	return m
}

func activeOf(asg map[string]*taskAssignment) map[TaskID]string {
	out := map[TaskID]string{}
	for id, a := range asg {
		for _, t := range a.active {
			out[t] = id
		}
	}
	return out
}

func TestAssignTasks(t *testing.T) {
	tests := []struct {
		name     string
		tasks    int32
		members  func() []*memberState
		standbys int
		coop     bool
		check    func(t *testing.T, asg map[string]*taskAssignment)
	}{
		{
			name:  "fresh group: balanced",
			tasks: 8,
			members: func() []*memberState {
				return []*memberState{member("a", 0), member("b", 0), member("c", 0)}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				require.Len(t, activeOf(asg), 8)
				var sizes []int
				for _, a := range asg {
					sizes = append(sizes, len(a.active))
				}
				sort.Ints(sizes)
				assert.Equal(t, []int{2, 3, 3}, sizes)
			},
		},
		{
			name:  "sticky scale-out: only the new member's share moves",
			tasks: 6,
			members: func() []*memberState {
				return []*memberState{member("a", 4, 0, 1, 2), member("b", 4, 3, 4, 5), member("c", 0)}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				got := activeOf(asg)
				require.Len(t, got, 6)
				moved := 0
				for p := int32(0); p < 6; p++ {
					prev := "a"
					if p >= 3 {
						prev = "b"
					}
					if got[TaskID{Partition: p}] != prev {
						moved++
						assert.Equal(t, "c", got[TaskID{Partition: p}], "a moved task goes to the new member")
					}
				}
				assert.Equal(t, 2, moved)
				assert.Len(t, asg["c"].active, 2)
			},
		},
		{
			name:  "sticky scale-in: the survivors keep theirs",
			tasks: 6,
			members: func() []*memberState {
				return []*memberState{member("a", 4, 0, 1), member("b", 4, 2, 3)}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				got := activeOf(asg)
				for _, p := range []int32{0, 1} {
					assert.Equal(t, "a", got[TaskID{Partition: p}])
				}
				for _, p := range []int32{2, 3} {
					assert.Equal(t, "b", got[TaskID{Partition: p}])
				}
				assert.Len(t, asg["a"].active, 3)
				assert.Len(t, asg["b"].active, 3)
			},
		},
		{
			name:  "stale claim: the later generation wins",
			tasks: 2,
			members: func() []*memberState {
				return []*memberState{member("a", 3, 0, 1), member("b", 5, 0)}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				got := activeOf(asg)
				assert.Equal(t, "b", got[TaskID{Partition: 0}])
				assert.Equal(t, "a", got[TaskID{Partition: 1}])
			},
		},
		{
			name:  "warm: an orphaned task goes to the freshest local copy",
			tasks: 4,
			members: func() []*memberState {
				a, b := member("a", 2, 0), member("b", 2, 1)
				// Tasks 2 and 3 lost their owner; b has a copy of 2 that is
				// more recent than a's, a is the only one with a copy of 3.
				a.offsets[TaskID{Partition: 2}] = 100
				b.offsets[TaskID{Partition: 2}] = 900
				a.offsets[TaskID{Partition: 3}] = 10
				return []*memberState{a, b}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				got := activeOf(asg)
				assert.Equal(t, "b", got[TaskID{Partition: 2}])
				assert.Equal(t, "a", got[TaskID{Partition: 3}])
			},
		},
		{
			name:     "standbys: one copy per task, never on its active member, spread evenly",
			tasks:    6,
			standbys: 1,
			members: func() []*memberState {
				return []*memberState{member("a", 0), member("b", 0), member("c", 0)}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				got := activeOf(asg)
				copies := map[TaskID]int{}
				for id, a := range asg {
					assert.Len(t, a.standby, 2, id)
					for _, s := range a.standby {
						copies[s]++
						assert.NotEqual(t, id, got[s], "standby of %v on its active member", s)
					}
				}
				for _, task := range tasksOf(0, 6) {
					assert.Equal(t, 1, copies[task], "%v", task)
				}
			},
		},
		{
			name:     "standbys: the warmest other member keeps the copy",
			tasks:    2,
			standbys: 1,
			members: func() []*memberState {
				a, b, c := member("a", 2, 0), member("b", 2, 1), member("c", 2)
				c.offsets[TaskID{Partition: 0}] = 50
				b.offsets[TaskID{Partition: 0}] = 70
				a.offsets[TaskID{Partition: 1}] = 5
				return []*memberState{a, b, c}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				assert.Equal(t, []TaskID{{Partition: 0}}, asg["b"].standby)
				assert.Equal(t, []TaskID{{Partition: 1}}, asg["a"].standby)
			},
		},
		{
			name:     "standbys: more replicas than other members",
			tasks:    2,
			standbys: 3,
			members: func() []*memberState {
				return []*memberState{member("a", 0), member("b", 0)}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				assert.Len(t, asg["a"].standby, 1)
				assert.Len(t, asg["b"].standby, 1)
			},
		},
		{
			name:     "cooperative: a moving task is only revoked from its holder this round",
			tasks:    4,
			standbys: 1,
			coop:     true,
			members: func() []*memberState {
				a := member("a", 7, 0, 1, 2, 3)
				for p := int32(0); p < 4; p++ {
					a.owned[TaskID{Partition: p}] = true
				}
				return []*memberState{a, member("b", 0)}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				assert.ElementsMatch(t, tasksOf(0, 2), asg["a"].active, "a keeps two")
				assert.Empty(t, asg["b"].active, "b gets its two in the follow-up rebalance")
				// b follows the moving tasks on their way (and a's two, as
				// their only other member); their holder a follows none.
				assert.ElementsMatch(t, tasksOf(0, 4), asg["b"].standby)
				assert.Empty(t, asg["a"].standby)
			},
		},
		{
			name:  "cooperative follow-up: the revoked tasks are handed out",
			tasks: 4,
			coop:  true,
			members: func() []*memberState {
				a := member("a", 8, 0, 1)
				a.owned[TaskID{Partition: 0}], a.owned[TaskID{Partition: 1}] = true, true
				return []*memberState{a, member("b", 0)}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				assert.ElementsMatch(t, tasksOf(0, 2), asg["a"].active)
				assert.ElementsMatch(t, []TaskID{{Partition: 2}, {Partition: 3}}, asg["b"].active)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			asg := assignTasks(tasksOf(0, tc.tasks), tc.members(), assignParams{standbys: tc.standbys, cooperative: tc.coop})
			tc.check(t, asg)
			// The same input gives the same plan (every member may lead).
			again := assignTasks(tasksOf(0, tc.tasks), tc.members(), assignParams{standbys: tc.standbys, cooperative: tc.coop})
			assert.Equal(t, asg, again)
		})
	}
}

// owning is a member that runs and owns (cooperative claims) the tasks of
// partitions active.
func owning(id string, gen int32, active ...int32) *memberState {
	m := member(id, gen, active...)
	for _, p := range active {
		m.owned[TaskID{Partition: p}] = true
	}
	return m
}

// ends gives each of the first n tasks a changelog end offset sum of end.
func ends(n int32, end int64) map[TaskID]int64 {
	out := map[TaskID]int64{}
	for _, t := range tasksOf(0, n) {
		out[t] = end
	}
	return out
}

// TestAssignTasksWarmups: the decisions of KIP-441's caught-up rule. A task
// moves only to a member whose copy lacks at most the acceptable lag;
// otherwise it stays with its owner and the member it is meant for gets a
// warm-up replica, within the plan's bound.
func TestAssignTasksWarmups(t *testing.T) {
	p := func(n int32) assignParams {
		return assignParams{cooperative: true, ends: ends(n, 1000), acceptableLag: 100, maxWarmups: 2}
	}
	tests := []struct {
		name    string
		tasks   int32
		params  func(assignParams) assignParams
		members func() []*memberState
		check   func(t *testing.T, asg map[string]*taskAssignment)
	}{
		{
			name:  "scale-out: a newcomer without copies gets warm-ups, the tasks stay",
			tasks: 6,
			members: func() []*memberState {
				return []*memberState{owning("a", 4, 0, 1, 2), owning("b", 4, 3, 4, 5), member("c", 0)}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				assert.ElementsMatch(t, tasksOf(0, 3), asg["a"].active, "nothing is revoked")
				assert.ElementsMatch(t, []TaskID{{Partition: 3}, {Partition: 4}, {Partition: 5}}, asg["b"].active)
				assert.Empty(t, asg["c"].active)
				// The two tasks the balance meant for c: the last of each owner.
				assert.ElementsMatch(t, []TaskID{{Partition: 2}, {Partition: 5}}, asg["c"].warmup)
				assert.Empty(t, asg["a"].warmup)
				assert.Empty(t, asg["b"].warmup)
			},
		},
		{
			name:  "probe: once the warm-ups caught up, the tasks move (revoked first)",
			tasks: 6,
			members: func() []*memberState {
				c := member("c", 5)
				c.offsets[TaskID{Partition: 2}] = 950 // 50 behind: caught up
				c.offsets[TaskID{Partition: 5}] = 900 // 100 behind: just caught up
				return []*memberState{owning("a", 5, 0, 1, 2), owning("b", 5, 3, 4, 5), c}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				assert.ElementsMatch(t, tasksOf(0, 2), asg["a"].active)
				assert.ElementsMatch(t, []TaskID{{Partition: 3}, {Partition: 4}}, asg["b"].active)
				assert.Empty(t, asg["c"].active, "c gets them in the follow-up rebalance")
				assert.ElementsMatch(t, []TaskID{{Partition: 2}, {Partition: 5}}, asg["c"].standby,
					"c's copies go on while the tasks are on their way, without StandbyReplicas too")
				assert.Empty(t, asg["c"].warmup)
			},
		},
		{
			name:  "one copy behind by more than the acceptable lag: only the other task moves",
			tasks: 6,
			members: func() []*memberState {
				c := member("c", 5)
				c.offsets[TaskID{Partition: 2}] = 950
				c.offsets[TaskID{Partition: 5}] = 899 // 101 behind
				return []*memberState{owning("a", 5, 0, 1, 2), owning("b", 5, 3, 4, 5), c}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				assert.ElementsMatch(t, tasksOf(0, 2), asg["a"].active, "2 is revoked from a")
				assert.ElementsMatch(t, []TaskID{{Partition: 3}, {Partition: 4}, {Partition: 5}}, asg["b"].active)
				assert.Equal(t, []TaskID{{Partition: 5}}, asg["c"].warmup)
				assert.Equal(t, []TaskID{{Partition: 2}}, asg["c"].standby)
			},
		},
		{
			name:  "an owner over its share gives up the tasks a member short of its share has caught-up copies of",
			tasks: 6,
			members: func() []*memberState {
				c := member("c", 5)
				c.offsets[TaskID{Partition: 0}] = 1000
				c.offsets[TaskID{Partition: 3}] = 990
				return []*memberState{owning("a", 5, 0, 1, 2), owning("b", 5, 3, 4, 5), c}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				assert.ElementsMatch(t, []TaskID{{Partition: 1}, {Partition: 2}}, asg["a"].active)
				assert.ElementsMatch(t, []TaskID{{Partition: 4}, {Partition: 5}}, asg["b"].active)
				assert.ElementsMatch(t, []TaskID{{Partition: 0}, {Partition: 3}}, asg["c"].standby)
				assert.Empty(t, asg["c"].warmup)
			},
		},
		{
			name:   "the warm-up bound: the tasks beyond it stay without a warm-up",
			tasks:  6,
			params: func(p assignParams) assignParams { p.maxWarmups = 1; return p },
			members: func() []*memberState {
				return []*memberState{owning("a", 4, 0, 1, 2), owning("b", 4, 3, 4, 5), member("c", 0)}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				assert.Len(t, asg["a"].active, 3)
				assert.Len(t, asg["b"].active, 3)
				assert.Empty(t, asg["c"].active)
				assert.Equal(t, []TaskID{{Partition: 2}}, asg["c"].warmup)
			},
		},
		{
			name:  "an orphaned task goes to a caught-up copy even beyond the balance; the intended member warms up",
			tasks: 6,
			members: func() []*memberState {
				// c left with 4 and 5; a has caught-up copies of both, b none.
				a, b := owning("a", 6, 0, 1), owning("b", 6, 2, 3)
				a.offsets[TaskID{Partition: 4}] = 1000
				a.offsets[TaskID{Partition: 5}] = 950
				return []*memberState{a, b}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				assert.ElementsMatch(t, []TaskID{{Partition: 0}, {Partition: 1}, {Partition: 4}, {Partition: 5}}, asg["a"].active)
				assert.ElementsMatch(t, []TaskID{{Partition: 2}, {Partition: 3}}, asg["b"].active)
				assert.Equal(t, []TaskID{{Partition: 5}}, asg["b"].warmup)
			},
		},
		{
			name:  "nobody caught up: the task goes where the balance puts it, no warm-up",
			tasks: 4,
			members: func() []*memberState {
				a, b := owning("a", 6, 0), owning("b", 6, 1)
				a.offsets[TaskID{Partition: 2}] = 10 // far behind
				return []*memberState{a, b}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				got := activeOf(asg)
				require.Len(t, got, 4)
				assert.Len(t, asg["a"].active, 2)
				assert.Len(t, asg["b"].active, 2)
				assert.Equal(t, "a", got[TaskID{Partition: 2}], "the warmest copy, however far behind")
				assert.Empty(t, asg["a"].warmup)
				assert.Empty(t, asg["b"].warmup)
			},
		},
		{
			name:   "tasks without stores move at once",
			tasks:  6,
			params: func(p assignParams) assignParams { p.ends = map[TaskID]int64{}; return p },
			members: func() []*memberState {
				return []*memberState{owning("a", 4, 0, 1, 2), owning("b", 4, 3, 4, 5), member("c", 0)}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				assert.Len(t, asg["a"].active, 2)
				assert.Len(t, asg["b"].active, 2)
				assert.Empty(t, asg["c"].warmup)
				assert.Len(t, asg["c"].standby, 2, "c follows its two tasks on their way")
			},
		},
		{
			name:   "warm-ups off (no changelog ends): the newcomer's share moves at once",
			tasks:  6,
			params: func(p assignParams) assignParams { p.ends = nil; return p },
			members: func() []*memberState {
				return []*memberState{owning("a", 4, 0, 1, 2), owning("b", 4, 3, 4, 5), member("c", 0)}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				assert.Len(t, asg["a"].active, 2)
				assert.Len(t, asg["b"].active, 2)
				assert.Empty(t, asg["c"].warmup)
			},
		},
		{
			name:   "standby replicas go to members other than the one warming up",
			tasks:  3,
			params: func(p assignParams) assignParams { p.standbys = 1; return p },
			members: func() []*memberState {
				a, b := owning("a", 4, 0, 1), owning("b", 4, 2)
				a.offsets[TaskID{Partition: 2}] = 1000
				b.offsets[TaskID{Partition: 0}] = 1000
				b.offsets[TaskID{Partition: 1}] = 1000
				return []*memberState{a, b, member("c", 0)}
			},
			check: func(t *testing.T, asg map[string]*taskAssignment) {
				assert.ElementsMatch(t, tasksOf(0, 2), asg["a"].active)
				assert.Equal(t, []TaskID{{Partition: 1}}, asg["c"].warmup)
				assert.Contains(t, asg["b"].standby, TaskID{Partition: 1}, "the standby of a task stays where it was")
				assert.NotContains(t, asg["c"].standby, TaskID{Partition: 1})
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			params := p(tc.tasks)
			if tc.params != nil {
				params = tc.params(params)
			}
			asg := assignTasks(tasksOf(0, tc.tasks), tc.members(), params)
			tc.check(t, asg)
			assert.Equal(t, asg, assignTasks(tasksOf(0, tc.tasks), tc.members(), params), "deterministic")
		})
	}
}

// TestTaskBalancerPlan: through sarama's interface, the partitions of a
// task's co-partitioned source topics go to the same member, join metadata
// carries the tasks and local copies, and assignments carry the standbys.
func TestTaskBalancerPlan(t *testing.T) {
	b := NewBuilder()
	b.AddStore(KeyValueStoreBuilder("shared", String(), String()))
	pass := func() Processor[string, string, string, string] { return &planProbe{} }
	Process(Source(b, "left", String(), String()), "l", pass, "shared").To("out", String(), String())
	Process(Source(b, "right", String(), String()), "r", pass, "shared")
	top, err := b.Build()
	require.NoError(t, err)
	require.Len(t, top.subs, 1)
	require.Len(t, top.subs[0].sources, 2)
	app, err := NewApp(top, Brokers("x:1"), ApplicationID("plan"), StandbyReplicas(1), CooperativeRebalancing())
	require.NoError(t, err)
	bal := &taskBalancer{a: app}
	assert.Equal(t, []sarama.RebalanceProtocol{sarama.RebalanceProtocolCooperative}, bal.SupportedProtocols())

	sub := func(active []string, offsets map[string]int64) []byte {
		raw, err := json.Marshal(subscriptionInfo{Version: 1, Generation: 3, Active: active, Offsets: offsets})
		require.NoError(t, err)
		return raw
	}
	members := map[string]sarama.ConsumerGroupMemberMetadata{
		"m1": {UserData: sub([]string{"0_0", "0_1"}, nil), OwnedPartitions: []*sarama.OwnedPartition{{Topic: "left", Partitions: []int32{0, 1}}, {Topic: "right", Partitions: []int32{0, 1}}}},
		"m2": {UserData: sub([]string{"0_2", "0_3"}, map[string]int64{"0_0": 40}), OwnedPartitions: []*sarama.OwnedPartition{{Topic: "left", Partitions: []int32{2, 3}}, {Topic: "right", Partitions: []int32{2, 3}}}},
		"m3": {UserData: sub(nil, map[string]int64{"0_1": 90})},
	}
	topics := map[string][]int32{"left": {0, 1, 2, 3}, "right": {0, 1, 2, 3}}
	plan, err := bal.Plan(members, topics)
	require.NoError(t, err)
	for id, asg := range plan {
		assert.Equal(t, asg["left"], asg["right"], "member %s: co-partitioned partitions together", id)
	}
	// Sticky and cooperative: 4 tasks over 3 members, m1 and m2 keep what
	// their share allows (m1, with as many tasks as m2 and the smaller id,
	// gets the larger share); the task m3 should get is only revoked from
	// m2 this round.
	assert.Equal(t, []int32{0, 1}, plan["m1"]["left"])
	assert.Equal(t, []int32{2}, plan["m2"]["left"])
	assert.Empty(t, plan["m3"]["left"])
	assert.Contains(t, plan, "m3", "a member without tasks is in the plan, so it gets its standbys")
	var standby assignmentInfo
	raw, err := bal.AssignmentData("m3", nil, 4)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &standby))
	assert.Contains(t, standby.Standby, "0_3", "m3 follows the task on its way to it")
	assert.Contains(t, standby.Standby, "0_1", "m3 has the warmest copy of 0_1")
	raw, err = bal.AssignmentData("m2", nil, 4)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &standby))
	assert.Contains(t, standby.Standby, "0_0", "m2 has the warmest copy of 0_0")
	assert.NotContains(t, standby.Standby, "0_3", "m2 revokes 0_3 and keeps no copy")

	// Exactly-once stays eager.
	eos, err := NewApp(top, Brokers("x:1"), ApplicationID("plan"), ExactlyOnce())
	require.NoError(t, err)
	assert.Equal(t, []sarama.RebalanceProtocol{sarama.RebalanceProtocolEager}, (&taskBalancer{a: eos}).SupportedProtocols())

	// Unknown or garbled metadata counts as a member without state.
	members["m4"] = sarama.ConsumerGroupMemberMetadata{UserData: []byte("{not json")}
	_, err = bal.Plan(members, topics)
	require.NoError(t, err)
}

// TestTaskBalancerPlanWarmups: through sarama's interface, with the
// changelogs' ends listed, a newcomer without copies gets no active task
// but warm-up replicas in its assignment data, and a member's join
// metadata carries its probe count.
func TestTaskBalancerPlanWarmups(t *testing.T) {
	b := NewBuilder()
	b.AddStore(KeyValueStoreBuilder("s", String(), String()))
	pass := func() Processor[string, string, string, string] { return &planProbe{} }
	Process(Source(b, "in", String(), String()), "p", pass, "s")
	top, err := b.Build()
	require.NoError(t, err)
	app, err := NewApp(top, Brokers("x:1"), ApplicationID("plan"), CooperativeRebalancing(), AcceptableRecoveryLag(100))
	require.NoError(t, err)
	bal := &taskBalancer{a: app, ends: func(tasks []TaskID) map[TaskID]int64 {
		out := map[TaskID]int64{}
		for _, t := range tasks {
			out[t] = 5000
		}
		return out
	}}
	app.sb.probes.Store(3)
	raw, err := bal.SubscriptionUserData(nil)
	require.NoError(t, err)
	var self subscriptionInfo
	require.NoError(t, json.Unmarshal(raw, &self))
	assert.Equal(t, int64(3), self.Probe)

	sub := func(gen int32, active []string, offsets map[string]int64) []byte {
		raw, err := json.Marshal(subscriptionInfo{Version: 1, Generation: gen, Active: active, Offsets: offsets})
		require.NoError(t, err)
		return raw
	}
	members := map[string]sarama.ConsumerGroupMemberMetadata{
		"m1": {UserData: sub(3, []string{"0_0", "0_1", "0_2", "0_3"}, nil), OwnedPartitions: []*sarama.OwnedPartition{{Topic: "in", Partitions: []int32{0, 1, 2, 3}}}},
		"m2": {UserData: sub(0, nil, nil)},
	}
	topics := map[string][]int32{"in": {0, 1, 2, 3}}
	plan, err := bal.Plan(members, topics)
	require.NoError(t, err)
	assert.Equal(t, []int32{0, 1, 2, 3}, plan["m1"]["in"], "nothing moves to a member without copies")
	assert.Empty(t, plan["m2"]["in"])
	var info assignmentInfo
	raw, err = bal.AssignmentData("m2", nil, 4)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &info))
	assert.Equal(t, []string{"0_2", "0_3"}, info.Warmup, "the default MaxWarmupReplicas, 2")

	// The probe: m2's copies have caught up (within 100 records).
	members["m2"] = sarama.ConsumerGroupMemberMetadata{UserData: sub(4, nil, map[string]int64{"0_2": 4950, "0_3": 4900})}
	plan, err = bal.Plan(members, topics)
	require.NoError(t, err)
	assert.Equal(t, []int32{0, 1}, plan["m1"]["in"], "0_2 and 0_3 are revoked from m1")
	raw, err = bal.AssignmentData("m2", nil, 5)
	require.NoError(t, err)
	info = assignmentInfo{}
	require.NoError(t, json.Unmarshal(raw, &info))
	assert.Empty(t, info.Warmup)
	assert.Equal(t, []string{"0_2", "0_3"}, info.Standby, "m2's copies go on until the tasks start there")
}

// TestRequestRejoin: a session that is not sarama's cannot be made to
// rejoin; sarama's own is exercised by TestIntegrationWarmupMovesCaughtUpTask.
func TestRequestRejoin(t *testing.T) {
	assert.False(t, requestRejoin(fakeSession{}, errProbingRebalance))
	assert.False(t, requestRejoin(&fakeSession{}, errProbingRebalance))
	assert.False(t, requestRejoin((*fakeSession)(nil), errProbingRebalance))
}

// fakeSession is a sarama.ConsumerGroupSession that is not sarama's.
type fakeSession struct{ sarama.ConsumerGroupSession }

func TestTaskKey(t *testing.T) {
	for _, id := range []TaskID{{0, 0}, {3, 17}} {
		got, ok := parseTaskKey(taskKey(id))
		require.True(t, ok)
		assert.Equal(t, id, got)
	}
	for _, bad := range []string{"", "1", "a_1", "1_b", "-1_2", "1_-2", fmt.Sprintf("1_%d", int64(1)<<40)} {
		_, ok := parseTaskKey(bad)
		assert.False(t, ok, bad)
	}
	b := NewBuilder()
	Source(b, "in", String(), String()).To("out", String(), String())
	top, err := b.Build()
	require.NoError(t, err)
	_, err = NewApp(top, Brokers("x:1"), ApplicationID("x"), StandbyReplicas(-1))
	require.ErrorContains(t, err, "StandbyReplicas")
}

type planProbe struct {
	ctx ProcessorContext[string, string]
}

func (p *planProbe) Init(ctx ProcessorContext[string, string]) error { p.ctx = ctx; return nil }
func (p *planProbe) Process(_ ProcessorContext[string, string], rec Record[string, string]) error {
	p.ctx.Forward(rec)
	return nil
}
func (p *planProbe) Close() error { return nil }
