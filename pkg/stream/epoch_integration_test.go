package stream_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// epochEvent is what a probe saw at a task instance's Init or Close.
type epochEvent struct {
	id         stream.TaskID
	close      bool
	committed  uint64    // CommittedEpoch
	streamTime time.Time // StreamTime
	maxUsed    uint64    // at Close: the largest epoch the instance used
}

// epochLog collects the probes' observations over every task instance of
// every App of a test.
type epochLog struct {
	mu        sync.Mutex
	events    []epochEvent
	processed int
	used      map[string]uint64 // record value -> CommitEpoch while processing it
	maxUsed   map[stream.TaskID]uint64
	problems  []string
}

func newEpochLog() *epochLog {
	return &epochLog{used: map[string]uint64{}, maxUsed: map[stream.TaskID]uint64{}}
}

func (l *epochLog) snapshot() (events []epochEvent, processed int, problems []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]epochEvent(nil), l.events...), l.processed, append([]string(nil), l.problems...)
}

func (l *epochLog) count(close bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.close == close {
			n++
		}
	}
	return n
}

// epochProbe uses the commit epoch for every record whose value starts with
// "use" and, with tick, in a wall-clock punctuation every 5 ms. It checks
// that a new instance of a task starts with every epoch a previous instance
// used covered by a commit, and that an instance uses no epoch its last
// commit does not cover.
type epochProbe struct {
	log     *epochLog
	tick    bool
	ctx     stream.ProcessorContext[string, string]
	maxUsed uint64
}

func (p *epochProbe) use() uint64 {
	e := p.ctx.CommitEpoch()
	p.maxUsed = max(p.maxUsed, e)
	p.log.mu.Lock()
	p.log.maxUsed[p.ctx.TaskID()] = max(p.log.maxUsed[p.ctx.TaskID()], e)
	p.log.mu.Unlock()
	return e
}

func (p *epochProbe) Init(ctx stream.ProcessorContext[string, string]) error {
	p.ctx = ctx
	id := ctx.TaskID()
	committed := ctx.CommittedEpoch()
	p.log.mu.Lock()
	if prev := p.log.maxUsed[id]; committed < prev {
		p.log.problems = append(p.log.problems, fmt.Sprintf("task %v starts with committed epoch %d, but epoch %d was used", id, committed, prev))
	}
	p.log.events = append(p.log.events, epochEvent{id: id, committed: committed, streamTime: ctx.StreamTime()})
	p.log.mu.Unlock()
	if p.tick {
		ctx.Schedule(5*time.Millisecond, stream.WallClockTime, func(time.Time) error {
			p.use()
			return nil
		})
	}
	return nil
}

func (p *epochProbe) Process(ctx stream.ProcessorContext[string, string], rec stream.Record[string, string]) error {
	var e uint64
	if strings.HasPrefix(rec.Value, "use") {
		e = p.use()
	}
	p.log.mu.Lock()
	p.log.processed++
	if e > 0 {
		p.log.used[rec.Value] = e
	}
	p.log.mu.Unlock()
	return nil
}

func (p *epochProbe) Close() error {
	id := p.ctx.TaskID()
	committed := p.ctx.CommittedEpoch()
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	if p.maxUsed > committed {
		p.log.problems = append(p.log.problems, fmt.Sprintf("task %v closes with epoch %d used but only %d committed", id, p.maxUsed, committed))
	}
	p.log.events = append(p.log.events, epochEvent{id: id, close: true, committed: committed, streamTime: p.ctx.StreamTime(), maxUsed: p.maxUsed})
	return nil
}

// epochTopology runs an epochProbe on in, whose records' event time is the
// number after the last ':' of the value (in ms), if any.
func epochTopology(t *testing.T, in string, log *epochLog, tick bool) *stream.Topology {
	t.Helper()
	b := stream.NewBuilder()
	src := stream.Source(b, in, stream.String(), stream.String(), stream.WithTimestampExtractor(func(r stream.Record[string, string]) time.Time {
		if i := strings.LastIndexByte(r.Value, ':'); i >= 0 {
			if ms, err := strconv.ParseInt(r.Value[i+1:], 10, 64); err == nil {
				return time.UnixMilli(ms)
			}
		}
		return r.Timestamp
	}))
	stream.Process(src, "probe", func() stream.Processor[string, string, string, string] { return &epochProbe{log: log, tick: tick} })
	top, err := b.Build()
	require.NoError(t, err)
	return top
}

// committedOffsets reads the group's committed offsets and metadata of
// topic's partitions 0..n-1 (offset -1: none).
func committedOffsets(t *testing.T, brokers []string, group, topic string, n int32) map[int32]*sarama.OffsetFetchResponseBlock {
	t.Helper()
	client, err := sarama.NewClient(brokers, kafkatest.SaramaConfig())
	require.NoError(t, err)
	defer client.Close()
	parts := make([]int32, n)
	for p := range parts {
		parts[p] = int32(p)
	}
	// With exactly-once the offsets are committed by a transaction, whose
	// markers the coordinator writes after EndTxn has returned: a plain
	// fetch right after a stop may still read the offsets of the
	// transaction before. RequireStable waits for them, as the runtime's
	// own fetch does (the broker answers UNSTABLE_OFFSET_COMMIT meanwhile).
	var out map[int32]*sarama.OffsetFetchResponseBlock
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		coord, err := client.Coordinator(group)
		if !assert.NoError(c, err) {
			_ = client.RefreshCoordinator(group)
			return
		}
		req := sarama.NewOffsetFetchRequest(client.Config().Version, group, map[string][]int32{topic: parts})
		req.RequireStable = req.Version >= 7
		resp, err := coord.FetchOffset(req)
		if !assert.NoError(c, err) || !assert.Equal(c, sarama.ErrNoError, resp.GroupError()) {
			return
		}
		got := map[int32]*sarama.OffsetFetchResponseBlock{}
		for _, p := range parts {
			b := resp.GetBlock(topic, p)
			if !assert.NotNil(c, b, "partition %d", p) || !assert.Equal(c, sarama.ErrNoError, b.Err, "partition %d", p) {
				return
			}
			got[p] = b
		}
		out = got
	}, 30*time.Second, 50*time.Millisecond)
	return out
}

func partition(p int32) *int32 { return &p }

func epochModes() []struct {
	name string
	opts []stream.Opt
} {
	return []struct {
		name string
		opts []stream.Opt
	}{
		{"at-least-once", nil},
		{"exactly-once", []stream.Opt{stream.ExactlyOnce()}},
	}
}

// TestIntegrationCommitEpochGracefulRestart: after a graceful stop and a
// start, every task goes on with the commit epoch and stream time of its
// last commit, which Kafka holds in the committed offsets' metadata.
func TestIntegrationCommitEpochGracefulRestart(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		for _, mode := range epochModes() {
			t.Run(be.Name+"/"+mode.name, func(t *testing.T) {
				brokers := be.Brokers(t)
				in := kafkatest.UniqueName(t, "in")
				kafkatest.CreateTopic(t, brokers, in, 2)
				appID := kafkatest.UniqueName(t, "app")
				log := newEpochLog()
				top := epochTopology(t, in, log, false)
				opts := append([]stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID)}, mode.opts...)

				t0 := time.Now().Add(-time.Hour).UnixMilli()
				var recs []kafkatest.KV
				wantST := map[int32]int64{}
				for i := range 40 {
					p := int32(i % 2)
					ts := t0 + int64(i*7%40) // out of order
					recs = append(recs, kafkatest.KV{Key: fmt.Sprintf("k%d", i), Value: fmt.Sprintf("use%d:%d", i, ts), Partition: partition(p)})
					wantST[p] = max(wantST[p], ts)
				}
				kafkatest.ProduceStrings(t, brokers, in, recs)
				_, stop := startApp(t, top, opts...)
				require.Eventually(t, func() bool { _, n, _ := log.snapshot(); return n == 40 }, 60*time.Second, 20*time.Millisecond)
				require.NoError(t, stop())

				events, _, problems := log.snapshot()
				require.Empty(t, problems)
				closes := map[int32]epochEvent{}
				for _, e := range events {
					if e.close {
						closes[e.id.Partition] = e
					}
				}
				require.Len(t, closes, 2)
				offs := committedOffsets(t, brokers, appID, in, 2)
				for p, c := range closes {
					require.Positive(t, c.committed, "partition %d", p)
					require.GreaterOrEqual(t, c.committed, c.maxUsed, "partition %d", p)
					require.Equal(t, wantST[p], c.streamTime.UnixMilli(), "partition %d", p)
					require.Equal(t, int64(20), offs[p].Offset, "partition %d", p)
					require.Regexp(t, fmt.Sprintf(`^stream/v1 epoch=%d st=%d wt=[0-9]+$`, c.committed, wantST[p]), offs[p].Metadata, "partition %d", p)
				}

				// A restart continues from the committed epoch and stream time.
				_, stop = startApp(t, top, opts...)
				require.Eventually(t, func() bool { return log.count(false) == 4 }, 60*time.Second, 20*time.Millisecond)
				events, _, _ = log.snapshot()
				for _, e := range events[len(events)-2:] {
					require.False(t, e.close)
					c := closes[e.id.Partition]
					require.Equal(t, c.committed, e.committed, "task %v", e.id)
					require.Equal(t, c.streamTime.UnixMilli(), e.streamTime.UnixMilli(), "task %v", e.id)
				}
				kafkatest.ProduceStrings(t, brokers, in, []kafkatest.KV{
					{Key: "x", Value: fmt.Sprintf("use-p0:%d", t0), Partition: partition(0)},
					{Key: "y", Value: fmt.Sprintf("use-p1:%d", t0), Partition: partition(1)},
				})
				require.Eventually(t, func() bool { _, n, _ := log.snapshot(); return n == 42 }, 60*time.Second, 20*time.Millisecond)
				log.mu.Lock()
				require.Equal(t, closes[0].committed+1, log.used["use-p0:"+strconv.FormatInt(t0, 10)], "the first epoch after a restart is CommittedEpoch+1")
				require.Equal(t, closes[1].committed+1, log.used["use-p1:"+strconv.FormatInt(t0, 10)])
				log.mu.Unlock()
				require.NoError(t, stop())
				_, _, problems = log.snapshot()
				require.Empty(t, problems)
			})
		}
	}
}

// TestIntegrationCommitMetadataWithoutOffsetMove: a task that uses an epoch
// without reading anything — say, windows closed by the wall clock after a
// restart — commits the new epoch although its offsets did not move, on a
// partition with a committed offset and on one that never had a record.
func TestIntegrationCommitMetadataWithoutOffsetMove(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		for _, mode := range epochModes() {
			t.Run(be.Name+"/"+mode.name, func(t *testing.T) {
				brokers := be.Brokers(t)
				in := kafkatest.UniqueName(t, "in")
				kafkatest.CreateTopic(t, brokers, in, 2)
				appID := kafkatest.UniqueName(t, "app")
				log := newEpochLog()
				opts := append([]stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID)}, mode.opts...)

				ts := time.Now().Add(-time.Hour).UnixMilli()
				var recs []kafkatest.KV
				for i := range 10 {
					recs = append(recs, kafkatest.KV{Key: "k", Value: fmt.Sprintf("v%d:%d", i, ts+int64(i)), Partition: partition(0)})
				}
				kafkatest.ProduceStrings(t, brokers, in, recs)
				_, stop := startApp(t, epochTopology(t, in, log, false), opts...)
				require.Eventually(t, func() bool { _, n, _ := log.snapshot(); return n == 10 }, 60*time.Second, 20*time.Millisecond)
				require.NoError(t, stop())
				before := committedOffsets(t, brokers, appID, in, 2)
				require.Equal(t, int64(10), before[0].Offset)
				require.Regexp(t, fmt.Sprintf(`^stream/v1 epoch=[1-9][0-9]* st=%d wt=[0-9]+$`, ts+9), before[0].Metadata, "stream time moved: an epoch was committed")
				require.Equal(t, int64(-1), before[1].Offset, "nothing happened on partition 1: nothing committed")

				// Now every task uses epochs in a wall-clock punctuation and
				// reads nothing.
				_, stop = startApp(t, epochTopology(t, in, log, true), opts...)
				require.Eventually(t, func() bool {
					now := committedOffsets(t, brokers, appID, in, 2)
					return now[0].Offset == 10 && strings.HasPrefix(now[0].Metadata, "stream/v1 epoch=") && now[0].Metadata != before[0].Metadata &&
						now[1].Offset == 0 && strings.HasPrefix(now[1].Metadata, "stream/v1 epoch=")
				}, 30*time.Second, 50*time.Millisecond)
				require.NoError(t, stop())

				after := committedOffsets(t, brokers, appID, in, 2)
				events, n, problems := log.snapshot()
				require.Equal(t, 10, n)
				require.Empty(t, problems)
				for _, e := range events {
					if !e.close || e.maxUsed == 0 {
						continue
					}
					p := e.id.Partition
					st := ""
					if p == 0 {
						st = fmt.Sprintf(" st=%d", ts+9) // restored, not moved
					}
					require.Regexp(t, fmt.Sprintf(`^stream/v1 epoch=%d%s wt=[0-9]+$`, e.committed, st), after[p].Metadata, "partition %d", p)
					require.Equal(t, []int64{10, 0}[p], after[p].Offset, "partition %d: offset did not move", p)
				}
			})
		}
	}
}

// TestIntegrationNoEpochAfterFinalCommit: across scale-out, scale-in and a
// graceful stop, no task instance uses an epoch after its last commit, and
// every new instance of a task starts with every used epoch committed: a
// graceful hand-over leaves nothing for the next owner to make up for.
func TestIntegrationNoEpochAfterFinalCommit(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		for _, mode := range epochModes() {
			t.Run(be.Name+"/"+mode.name, func(t *testing.T) {
				brokers := be.Brokers(t)
				in := kafkatest.UniqueName(t, "in")
				kafkatest.CreateTopic(t, brokers, in, 4)
				appID := kafkatest.UniqueName(t, "app")
				log := newEpochLog()
				top := epochTopology(t, in, log, true)
				opts := append([]stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID),
					stream.WallClockInterval(time.Millisecond), stream.CommitInterval(50 * time.Millisecond),
					stream.CooperativeRebalancing()}, mode.opts...)
				produce := func(from int) {
					var recs []kafkatest.KV
					for i := from; i < from+40; i++ {
						recs = append(recs, kafkatest.KV{Key: fmt.Sprintf("k%d", i), Value: fmt.Sprintf("use%d:%d", i, time.Now().UnixMilli())})
					}
					kafkatest.ProduceStrings(t, brokers, in, recs)
				}

				// At-least-once with CooperativeRebalancing uses the
				// cooperative protocol (ignored with ExactlyOnce): only the tasks
				// that move are closed and created again. Exactly-once is
				// eager: every task of every instance is.
				cooperative := mode.name == "at-least-once"
				_, stopA := startApp(t, top, opts...)
				require.Eventually(t, func() bool { return log.count(false) == 4 }, 60*time.Second, 10*time.Millisecond)
				produce(0)
				time.Sleep(500 * time.Millisecond)
				// Scale out: two of A's tasks move to B (eager: A's four
				// close, A and B get two each).
				_, stopB := startApp(t, top, opts...)
				want := 8
				if cooperative {
					want = 6
				}
				require.Eventually(t, func() bool { return log.count(false) >= want }, 60*time.Second, 10*time.Millisecond)
				if cooperative {
					time.Sleep(time.Second)
					require.Equal(t, 6, log.count(false), "only the two moved tasks are created again")
					require.Equal(t, 2, log.count(true), "only the two moved tasks are closed")
				}
				produce(40)
				time.Sleep(500 * time.Millisecond)
				// Scale in: B takes A's two (eager: all four).
				n := log.count(false)
				require.NoError(t, stopA())
				want = n + 4
				if cooperative {
					want = n + 2
				}
				require.Eventually(t, func() bool { return log.count(false) >= want }, 60*time.Second, 10*time.Millisecond)
				produce(80)
				require.Eventually(t, func() bool { _, n, _ := log.snapshot(); return n == 120 }, 60*time.Second, 10*time.Millisecond)
				time.Sleep(200 * time.Millisecond)
				require.NoError(t, stopB())

				events, _, problems := log.snapshot()
				require.Empty(t, problems)
				require.Equal(t, log.count(false), log.count(true), "every instance closed")
				// Each new instance starts exactly where the previous one's
				// last commit left off.
				last := map[stream.TaskID]epochEvent{}
				used := 0
				for _, e := range events {
					if e.close {
						require.GreaterOrEqual(t, e.committed, e.maxUsed, "task %v", e.id)
						if e.maxUsed > 0 {
							used++
						}
						last[e.id] = e
						continue
					}
					if c, ok := last[e.id]; ok {
						require.Equal(t, c.committed, e.committed, "task %v", e.id)
						require.Equal(t, c.streamTime.UnixMilli(), e.streamTime.UnixMilli(), "task %v", e.id)
					}
				}
				require.Positive(t, used, "instances used epochs")
			})
		}
	}
}
