package stream

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWithoutDedupPut: a Put into a store WithoutDedup writes without
// reading the old value first (nothing of it survives), and still replaces
// it, applies again on a redelivered record, stores a value without
// positions, and goes to the changelog through the record cache.
func TestWithoutDedupPut(t *testing.T) {
	b := NewBuilder()
	b.AddStore(KeyValueStoreBuilder("first", String(), String(), WithoutDedup()))
	b.AddStore(KeyValueStoreBuilder("second", String(), String()))
	src := Source(b, "in", String(), String())
	Process(src, "pair", func() Processor[string, string, string, string] { return &pairWriter{} }, "first", "second")
	top, err := b.Build()
	require.NoError(t, err)
	l, err := NewLocalRunner(top)
	require.NoError(t, err)
	env := &ackingEnv{LocalRunner: l, rc: &recordCache{max: 1 << 20}, unacked: map[*storeCore]int{}}
	task, err := newTask(top, top.subs[0], 0, env, taskStart{})
	require.NoError(t, err)
	task.mu.Lock()
	defer task.mu.Unlock()
	pipe := func(off int64, k, v string) {
		r := &inRecord{topic: "in", offset: off, key: []byte(k), value: []byte(v), timestamp: time.UnixMilli(off)}
		require.NoError(t, task.process(r))
	}
	pipe(0, "a", "1")
	pipe(1, "b", "1")
	pipe(2, "a", "2")
	// Offset 1 again with another value (as if the input changed under a
	// redelivery): the dedup store keeps what it applied, the other one
	// takes the put.
	pipe(1, "b", "3")

	first := task.stores["first"].typed.(KeyValueStore[string, string])
	second := task.stores["second"].typed.(KeyValueStore[string, string])
	for _, c := range []struct {
		s    KeyValueStore[string, string]
		k, v string
	}{{first, "a", "2"}, {first, "b", "3"}, {second, "a", "2"}, {second, "b", "1"}} {
		v, found, err := c.s.Get(c.k)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, c.v, v, "%s/%s", c.s.Name(), c.k)
	}
	raw, found, err := task.stores["first"].backend.Get([]byte("a"))
	require.NoError(t, err)
	require.True(t, found)
	env0, err := decodeEnvelope(raw)
	require.NoError(t, err)
	require.Empty(t, env0.positions)
	require.Equal(t, "2", string(env0.value))
	require.Len(t, task.stores["first"].dirty, 2, "held back in the record cache")

	require.NoError(t, first.Delete("a"))
	_, found, err = first.Get("a")
	require.NoError(t, err)
	require.False(t, found)
	task.stores["first"].closed.Store(true)
	require.ErrorIs(t, first.Put("a", "x"), ErrStoreClosed)
}
