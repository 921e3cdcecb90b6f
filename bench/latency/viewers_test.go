package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/wire"
)

// TestCrowd feeds two viewers an event stream and checks what the analysis
// makes of it: the first arrival of a line counts, a repeat does not, and a
// viewer that lacks a result is incomplete.
func TestCrowd(t *testing.T) {
	grace := 500 * time.Millisecond
	a := wire.NewResult(10000, 2*time.Second, "🔥", 3, 1000)
	b := wire.NewResult(10000, 2*time.Second, "🎉", 1, 1000)
	line := func(r wire.Result) string {
		v, err := r.Marshal()
		require.NoError(t, err)
		return string(v)
	}
	measured := []arrival{{res: a, hash: hashLine([]byte(line(a)))}, {res: b, hash: hashLine([]byte(line(b)))}}

	full, partial := &lightViewer{}, &lightViewer{}
	full.read(io.NopCloser(strings.NewReader(": connected\n\nevent: window\ndata: " + line(a) + "\n\nevent: window\ndata: " + line(b) + "\n\n")))
	partial.read(io.NopCloser(strings.NewReader("event: window\ndata: " + line(a) + "\n\n")))
	require.True(t, full.ended)
	require.Len(t, full.seen, 2)
	// A repeat of a, arriving later, does not move its first arrival.
	full.seen = append(full.seen, sighting{hash: measured[0].hash, at: full.seen[0].at + uint64(time.Hour)})

	sendEnd := time.UnixMilli(12000) // b's window closed at 12500: after it
	vi := analyseCrowd(&crowd{viewers: []*lightViewer{full, partial}}, 2, 0, measured, grace, 200*time.Millisecond, sendEnd)
	require.Equal(t, 2, vi.Connected)
	require.Equal(t, 1, vi.Complete)
	require.Equal(t, 1, vi.MissingResults)
	require.Equal(t, 3, vi.Delivery.Count, "a at both viewers, b at one")
	require.False(t, vi.MeetsTarget, "a viewer lacked a result")
	require.Equal(t, 0, vi.DeliveryUnderLoad.Count, "both windows closed after the sending ended")
	vi = analyseCrowd(&crowd{viewers: []*lightViewer{full, partial}}, 2, 0, measured, grace, 200*time.Millisecond, time.UnixMilli(12501))
	require.Equal(t, 3, vi.DeliveryUnderLoad.Count)
	// The window closed in 1970: every delivery is decades late.
	require.Greater(t, vi.Delivery.Min, float64(time.Hour/time.Millisecond)*24*365)
	require.Less(t, vi.Delivery.Max-vi.Delivery.Min, float64(time.Minute/time.Millisecond), "the repeat did not count")
}
