package dashboard

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/wire"
)

func TestHubDropsSlowViewers(t *testing.T) {
	var dropped atomic.Int32
	h := newHub(3, 2, func() { dropped.Add(1) })
	slow, fast := h.subscribe(), h.subscribe()
	require.NotNil(t, slow)
	require.NotNil(t, fast)

	var got [][]byte
	for i := range 5 {
		h.broadcast([]byte{byte(i)})
		got = append(got, <-fast.events) // fast keeps up
	}
	require.Len(t, got, 5)
	<-slow.gone // slow never read: dropped after its 2 buffered events
	require.Equal(t, int32(1), dropped.Load())
	require.Equal(t, 1, h.count())

	// Capacity: the dropped viewer's place is free again.
	require.NotNil(t, h.subscribe())
	require.NotNil(t, h.subscribe())
	require.Nil(t, h.subscribe(), "hub is full")

	h.unsubscribe(slow) // already gone: no double close
	h.close()
	<-fast.gone
	require.Nil(t, h.subscribe(), "closed hub refuses viewers")
}

func TestHistory(t *testing.T) {
	h := newHistory(4)
	add := func(start int64, emoji string, count int64) bool {
		return h.add(wire.Result{WindowStart: start, WindowEnd: start + 2000, EmojiType: emoji, Count: count, Bursts: 1})
	}
	require.True(t, add(0, "🔥", 5))
	require.True(t, add(0, "👍", 9))
	require.False(t, add(0, "🔥", 5), "duplicate")
	require.True(t, add(2000, "🔥", 1))
	require.True(t, add(4000, "🎉", 3))
	require.True(t, add(6000, "🔥", 2)) // evicts the oldest (0, 🔥)

	var got []string
	for _, r := range h.latest(10) {
		got = append(got, fmt.Sprintf("%d%s", r.WindowStart, r.EmojiType))
	}
	require.Equal(t, []string{"6000🔥", "4000🎉", "2000🔥", "0👍"}, got)
	require.Len(t, h.latest(2), 2)
	require.True(t, add(0, "🔥", 5), "evicted results may come back")
}
