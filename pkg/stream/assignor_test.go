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
			asg := assignTasks(tasksOf(0, tc.tasks), tc.members(), tc.standbys, tc.coop)
			tc.check(t, asg)
			// The same input gives the same plan (every member may lead).
			again := assignTasks(tasksOf(0, tc.tasks), tc.members(), tc.standbys, tc.coop)
			assert.Equal(t, asg, again)
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
