package main

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/wire"
)

// newTestCollector is a collector without a consumer: records are handed
// to it as its partition consumers would.
func newTestCollector(expected map[rkey]int64) *collector {
	c := &collector{expected: expected, anyKey: true, results: map[rkey]wire.Result{}, raw: map[rkey]string{},
		complete: make(chan struct{}), wake: make(chan struct{}, 1), stop: make(chan struct{}), checked: make(chan struct{})}
	go c.check()
	return c
}

func resultMsg(t *testing.T, start int64, emoji string, count int64) *sarama.ConsumerMessage {
	t.Helper()
	v, err := wire.Result{WindowStart: start, WindowEnd: start + 2000, EmojiType: emoji, Count: count}.Marshal()
	require.NoError(t, err)
	return &sarama.ConsumerMessage{Key: []byte(emoji), Value: v}
}

func TestCollectorCompletesAtTheLastNeededArrival(t *testing.T) {
	expected := map[rkey]int64{{0, "a"}: 1, {0, "b"}: 2, {2000, "a"}: 3}
	c := newTestCollector(expected)

	c.handle(resultMsg(t, 0, "a", 1))
	c.handle(resultMsg(t, 0, "a", 1)) // a duplicate: three records, but not the set
	c.handle(resultMsg(t, 0, "b", 2))
	select {
	case <-c.complete:
		t.Fatal("complete before every expected result arrived")
	case <-time.After(100 * time.Millisecond):
	}
	c.handle(resultMsg(t, 2000, "a", 3))
	c.mu.Lock()
	lastArrival := c.lastRecv
	c.mu.Unlock()
	select {
	case <-c.complete:
	case <-time.After(5 * time.Second):
		t.Fatal("not complete after every expected result arrived")
	}
	c.mu.Lock()
	doneAt := c.doneAt
	c.mu.Unlock()
	require.Equal(t, lastArrival, doneAt, "the completion time is the completing record's arrival")

	c.handle(resultMsg(t, 4000, "z", 1)) // not expected
	c.handle(resultMsg(t, 0, "b", 5))    // a conflicting copy
	close(c.stop)
	<-c.checked
	require.Equal(t, 1, c.dups)
	require.Equal(t, 1, c.conflicts)
	require.Equal(t, 1, c.extra)
	require.Equal(t, 3, c.seen)
	require.Equal(t, 6, c.records)
}

func TestUsageAtInterpolatesCPU(t *testing.T) {
	t0 := time.Unix(1000, 0)
	u := &usageSampler{samples: []usageSample{
		{t: t0, cpu: 1, rss: 10, broker: 5},
		{t: t0.Add(100 * time.Millisecond), cpu: 2, rss: 20, broker: 7},
		{t: t0.Add(200 * time.Millisecond), cpu: 4, rss: 25, broker: -1},
	}}
	got := u.at(t0.Add(25 * time.Millisecond))
	require.InDelta(t, 1.25, got.cpu, 1e-9)
	require.InDelta(t, 5.5, got.broker, 1e-9)
	require.Equal(t, 20.0, got.rss, "the peak of the sample after")
	got = u.at(t0.Add(150 * time.Millisecond))
	require.InDelta(t, 3, got.cpu, 1e-9)
	require.Equal(t, -1.0, got.broker, "unknown when a side is unknown")
	require.Equal(t, 1.0, u.at(t0.Add(-time.Second)).cpu, "before the first sample: the first")
}
