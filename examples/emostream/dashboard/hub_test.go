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

	for i := range 5 {
		h.broadcast([]byte{byte(i)})
		frames, wait, ok := h.read(fast, nil) // fast keeps up
		require.True(t, ok)
		require.Nil(t, wait)
		require.Equal(t, [][]byte{{byte(i)}}, frames)
	}
	// slow never read: 5 frames behind a ring of 2, so it lost some.
	_, _, ok := h.read(slow, nil)
	require.False(t, ok, "a viewer that fell behind the ring ends")
	require.Equal(t, int32(1), dropped.Load())
	h.unsubscribe(slow)
	require.Equal(t, 1, h.viewers())

	// Capacity: the dropped viewer's place is free again.
	require.NotNil(t, h.subscribe())
	require.NotNil(t, h.subscribe())
	require.Nil(t, h.subscribe(), "hub is full")
	require.Equal(t, 3, h.viewers())

	h.close()
	_, _, ok = h.read(fast, nil)
	require.False(t, ok, "closed hub ends streams")
	require.Nil(t, h.subscribe(), "closed hub refuses viewers")
}

// TestHubCoalesces checks that a viewer gets every frame published since it
// last read in one read, and that a broadcast wakes a waiting viewer.
func TestHubCoalesces(t *testing.T) {
	h := newHub(10, 8, func() { t.Error("nobody is dropped") })
	v := h.subscribe()
	frames, wait, ok := h.read(v, nil)
	require.True(t, ok)
	require.Empty(t, frames)
	require.NotNil(t, wait)
	select {
	case <-wait:
		t.Fatal("woken before a broadcast")
	default:
	}
	h.broadcast([]byte("a"))
	h.broadcast([]byte("b"))
	<-wait // closed by the broadcast
	frames, _, ok = h.read(v, frames[:0])
	require.True(t, ok)
	require.Equal(t, [][]byte{[]byte("a"), []byte("b")}, frames)

	late := h.subscribe()
	h.broadcast([]byte("c"))
	frames, _, _ = h.read(late, nil)
	require.Equal(t, [][]byte{[]byte("c")}, frames, "a new viewer starts at the next frame")
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
