package window

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestExpiryQueueOrder: windows come out by end, oldest first, each end's
// windows in the order they were added, whatever order the ends arrived in
// (a task's start adds them in window-store order); popUpTo removes exactly
// the windows up to its bound.
func TestExpiryQueueOrder(t *testing.T) {
	var q expiryQueue
	add := func(k string, start, end int64) { q.add([]byte(k), start, end) }
	add("b", 0, 2000)
	add("a", 2000, 4000)
	add("", 0, 2000) // an empty key is a key
	add("long-key", 4000, 6000)
	add("a", 0, 2000)
	for _, end := range q.ends {
		q.trim(end)
	}
	require.Equal(t, []int64{2000, 4000, 6000}, q.ends)
	require.Equal(t, 5, q.len())

	var seen []string
	collect := func(kb []byte, start, end int64) error {
		seen = append(seen, fmt.Sprintf("%s@%d-%d", kb, start, end))
		return nil
	}
	require.NoError(t, q.each(2000, 6000, collect))
	require.Equal(t, []string{"a@2000-4000", "long-key@4000-6000"}, seen)

	seen = nil
	require.NoError(t, q.popUpTo(4999, collect))
	require.Equal(t, []string{"b@0-2000", "@0-2000", "a@0-2000", "a@2000-4000"}, seen)
	require.Equal(t, []int64{6000}, q.ends)
	require.Equal(t, 1, q.len())

	// A failing callback leaves its end's windows queued.
	boom := fmt.Errorf("boom")
	require.ErrorIs(t, q.popUpTo(6000, func([]byte, int64, int64) error { return boom }), boom)
	require.Equal(t, 1, q.len())
}
