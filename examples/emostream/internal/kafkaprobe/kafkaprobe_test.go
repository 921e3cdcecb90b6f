package kafkaprobe_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/internal/kafkaprobe"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestProbeFollowsBrokerRestart: ready while the topics are served, an
// error naming Kafka while the broker is gone, ready again once it is back
// (restarted in-process, empty, the topics created again).
func TestProbeFollowsBrokerRestart(t *testing.T) {
	b := kafkatest.StartRestartable(t)
	in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
	kafkatest.CreateTopic(t, b.Addrs(), in, 2)
	kafkatest.CreateTopic(t, b.Addrs(), out, 2)

	p := kafkaprobe.New(b.Addrs(), []string{in, out}, nil)
	require.ErrorIs(t, p.Ready(), kafkaprobe.ErrNotChecked)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	require.Eventually(t, func() bool { return p.Ready() == nil }, 10*time.Second, 20*time.Millisecond)
	b.Stop()
	require.Eventually(t, func() bool { return p.Ready() != nil }, 10*time.Second, 20*time.Millisecond)
	require.ErrorContains(t, p.Ready(), "kafka")
	t.Logf("while the broker is down: %v", p.Ready())

	b.Start()
	kafkatest.CreateTopic(t, b.Addrs(), in, 2)
	require.Never(t, func() bool { return p.Ready() == nil }, 3*time.Second, 20*time.Millisecond,
		"one topic missing is still trouble")
	require.ErrorContains(t, p.Ready(), out)
	kafkatest.CreateTopic(t, b.Addrs(), out, 2)
	require.Eventually(t, func() bool { return p.Ready() == nil }, 20*time.Second, 20*time.Millisecond, "ready again: %v", p.Ready())
}
