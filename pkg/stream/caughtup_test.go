package stream_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// caughtUpProbe records stream.CaughtUp and stream.InputCompleteAt for
// every record it processes.
type caughtUpProbe struct {
	mu       *sync.Mutex
	seen     map[string]bool      // value -> CaughtUp while processing it
	complete map[string]time.Time // value -> InputCompleteAt while processing it
	ch       chan struct{}
}

func (p *caughtUpProbe) Init(stream.ProcessorContext[string, string]) error {
	select {
	case p.ch <- struct{}{}:
	default:
	}
	return nil
}

func (p *caughtUpProbe) Process(ctx stream.ProcessorContext[string, string], rec stream.Record[string, string]) error {
	c := ctx.CaughtUp()
	at := ctx.InputCompleteAt()
	p.mu.Lock()
	p.seen[rec.Value] = c
	p.complete[rec.Value] = at
	p.mu.Unlock()
	return nil
}

func (p *caughtUpProbe) Close() error { return nil }

// TestIntegrationCaughtUpFirstRecord: the first record of a fresh, empty
// partition is the tail (CaughtUp), as are records written in one burst to a
// caught-up partition; the records of a backlog — in Kafka before the task
// started, fresh or after a restart — are not, up to the last one, and
// InputCompleteAt gives the application's start (fresh) or the time the last
// commit recorded (after a restart) while they are processed.
func TestIntegrationCaughtUpFirstRecord(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			var mu sync.Mutex
			seen := map[string]bool{}
			complete := map[string]time.Time{}
			inits := make(chan struct{}, 1)
			topology := func(in string) *stream.Topology {
				b := stream.NewBuilder()
				src := stream.Source(b, in, stream.String(), stream.String())
				stream.Process(src, "probe", func() stream.Processor[string, string, string, string] {
					return &caughtUpProbe{mu: &mu, seen: seen, complete: complete, ch: inits}
				})
				top, err := b.Build()
				require.NoError(t, err)
				return top
			}
			caughtUp := func(v string) (c, ok bool) {
				mu.Lock()
				defer mu.Unlock()
				c, ok = seen[v]
				return c, ok
			}
			waitFor := func(v string) bool {
				t.Helper()
				require.Eventually(t, func() bool { _, ok := caughtUp(v); return ok }, 60*time.Second, 10*time.Millisecond, v)
				c, _ := caughtUp(v)
				return c
			}
			records := func(name string, n int) []kafkatest.KV {
				recs := make([]kafkatest.KV, n)
				for i := range recs {
					recs[i] = kafkatest.KV{Key: "k", Value: fmt.Sprintf("%s-%d", name, i)}
				}
				return recs
			}
			newApp := func(t *testing.T) (in string, opts []stream.Opt) {
				in = kafkatest.UniqueName(t, "in")
				kafkatest.CreateTopic(t, brokers, in, 1)
				return in, []stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(kafkatest.UniqueName(t, "app"))}
			}

			t.Run("tail", func(t *testing.T) {
				in, opts := newApp(t)
				_, stop := startApp(t, topology(in), opts...)
				select {
				case <-inits:
				case <-time.After(60 * time.Second):
					t.Fatal("task not created")
				}
				time.Sleep(time.Second) // the claim starts on the empty partition
				kafkatest.ProduceStrings(t, brokers, in, records("first", 1))
				require.True(t, waitFor("first-0"), "the first record of an empty partition is the tail")
				kafkatest.ProduceStrings(t, brokers, in, records("burst", 2))
				require.True(t, waitFor("burst-0"), "a burst written to a caught-up partition is the tail")
				require.True(t, waitFor("burst-1"))
				require.NoError(t, stop())

				// After a restart, a few records that arrived meanwhile are a
				// backlog: a committed offset gives no slack.
				kafkatest.ProduceStrings(t, brokers, in, records("again", 2))
				_, stop = startApp(t, topology(in), opts...)
				require.False(t, waitFor("again-0"))
				require.False(t, waitFor("again-1"))
				require.NoError(t, stop())
			})

			completeAt := func(v string) time.Time {
				mu.Lock()
				defer mu.Unlock()
				return complete[v]
			}

			t.Run("joining", func(t *testing.T) {
				// A record written before a new application started is a
				// backlog, however short; its input was complete as of the
				// application's start (no commit recorded a later time), so
				// a wall-clock decision judges it as of then.
				in, opts := newApp(t)
				kafkatest.ProduceStrings(t, brokers, in, records("joining", 1))
				before := time.Now()
				_, stop := startApp(t, topology(in), opts...)
				require.False(t, waitFor("joining-0"))
				at := completeAt("joining-0")
				require.False(t, at.Before(before), "input complete as of the start: %v < %v", at, before)
				require.True(t, at.Before(before.Add(5*time.Second)), "input complete as of the start, not of the processing: %v", at)
				kafkatest.ProduceStrings(t, brokers, in, records("live", 1))
				require.True(t, waitFor("live-0"))
				require.WithinDuration(t, time.Now(), completeAt("live-0"), 5*time.Second, "caught up: the wall clock")
				require.NoError(t, stop())
			})

			t.Run("backlog", func(t *testing.T) {
				in, opts := newApp(t)
				kafkatest.ProduceStrings(t, brokers, in, records("fresh", 200))
				_, stop := startApp(t, topology(in), opts...)
				require.False(t, waitFor("fresh-0"), "the records of a backlog are not the tail")
				require.False(t, waitFor("fresh-199"), "not even the last one")
				kafkatest.ProduceStrings(t, brokers, in, records("live", 1))
				require.True(t, waitFor("live-0"), "a record written after the backlog is the tail")
				require.NoError(t, stop())

				stopped := time.Now()
				time.Sleep(50 * time.Millisecond)
				kafkatest.ProduceStrings(t, brokers, in, records("restart", 200))
				_, stop = startApp(t, topology(in), opts...)
				require.False(t, waitFor("restart-0"), "after a restart, the records of the backlog are not the tail")
				// The last commit recorded when the input was last complete:
				// before the stop, not the new start.
				require.False(t, completeAt("restart-0").After(stopped), "input complete as of the last commit: %v > %v", completeAt("restart-0"), stopped)
				require.True(t, completeAt("restart-0").After(completeAt("live-0").Add(-time.Millisecond)), "input complete as of the last commit, not earlier")
				require.False(t, waitFor("restart-199"))
				kafkatest.ProduceStrings(t, brokers, in, records("after", 1))
				require.True(t, waitFor("after-0"))
				require.NoError(t, stop())
			})
		})
	}
}
