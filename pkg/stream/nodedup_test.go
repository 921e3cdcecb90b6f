package stream

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pipeTask builds b's first sub-topology as a task of an App with a 1 MiB
// record cache and returns it, locked, with a function that processes a
// record of topic "in" at an offset (its timestamp in milliseconds too).
func pipeTask(t *testing.T, b *Builder) (*task, func(off int64, k, v string)) {
	t.Helper()
	task, _ := ackingTask(t, b, 1<<20)
	return task, func(off int64, k, v string) {
		r := &inRecord{topic: "in", offset: off, key: []byte(k), value: []byte(v), timestamp: time.UnixMilli(off)}
		require.NoError(t, task.process(r))
	}
}

// ackingTask builds b's first sub-topology as a task, locked, of an
// ackingEnv whose record cache holds budget bytes.
func ackingTask(t *testing.T, b *Builder, budget int64) (*task, *ackingEnv) {
	t.Helper()
	top, err := b.Build()
	require.NoError(t, err)
	l, err := NewLocalRunner(top)
	require.NoError(t, err)
	env := &ackingEnv{LocalRunner: l, rc: &recordCache{max: budget}, unacked: map[*storeCore]int{}}
	task, err := newTask(top, top.subs[0], 0, env, taskStart{})
	require.NoError(t, err)
	task.mu.Lock()
	return task, env
}

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
	task, pipe := pipeTask(t, b)
	defer task.mu.Unlock()
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

// createCounter counts records per key in the store "counts": with
// create, a key's first record goes through Create, every other through
// Update.
type createCounter struct {
	create bool
	counts KeyValueStore[string, int64]
	seen   map[string]bool
}

func (c *createCounter) Init(ctx ProcessorContext[string, string]) error {
	var err error
	c.counts, err = GetKeyValueStore[string, int64](ctx, "counts")
	c.seen = map[string]bool{}
	return err
}

func (c *createCounter) Process(_ ProcessorContext[string, string], rec Record[string, string]) error {
	if c.create && !c.seen[rec.Key] {
		c.seen[rec.Key] = true
		return c.counts.(KeyValueCreator[string, int64]).Create(rec.Key, 1)
	}
	_, _, err := c.counts.Update(rec.Key, func(old int64, _ bool) (int64, error) { return old + 1, nil })
	return err
}

func (c *createCounter) Close() error { return nil }

// TestCreateWritesWhatUpdateWrites: Create of a new key stores, and holds
// for the changelog, the same bytes as Update of a missing key (the value
// and its dedup envelope with the record's position), so a redelivered
// record is recognised as applied after either.
func TestCreateWritesWhatUpdateWrites(t *testing.T) {
	run := func(create bool) *storeCore {
		b := NewBuilder()
		b.AddStore(KeyValueStoreBuilder("counts", String(), Int64()))
		src := Source(b, "in", String(), String())
		Process(src, "count", func() Processor[string, string, string, string] { return &createCounter{create: create} }, "counts")
		task, pipe := pipeTask(t, b)
		defer task.mu.Unlock()
		pipe(0, "a", "x")
		pipe(1, "b", "x")
		pipe(2, "a", "x")
		// Redelivered: applied already.
		pipe(0, "a", "x")
		pipe(1, "b", "x")
		pipe(3, "c", "x")
		pipe(3, "c", "x")
		return task.stores["counts"]
	}
	created, updated := run(true), run(false)
	for k, want := range map[string]int64{"a": 2, "b": 1, "c": 1} {
		for _, s := range []*storeCore{created, updated} {
			v, found, err := s.typed.(KeyValueStore[string, int64]).Get(k)
			require.NoError(t, err)
			require.True(t, found)
			require.Equal(t, want, v, "%s", k)
		}
		rc, _, err := created.backend.Get([]byte(k))
		require.NoError(t, err)
		ru, _, err := updated.backend.Get([]byte(k))
		require.NoError(t, err)
		require.Equal(t, ru, rc, "stored bytes of %s", k)
		require.Equal(t, updated.dirty[k], created.dirty[k], "changelog bytes of %s", k)
	}
}

// valueWriter writes each record's value under its key in the store "s".
type valueWriter struct{ s KeyValueStore[string, string] }

func (w *valueWriter) Init(ctx ProcessorContext[string, string]) (err error) {
	w.s, err = GetKeyValueStore[string, string](ctx, "s")
	return err
}

func (w *valueWriter) Process(_ ProcessorContext[string, string], rec Record[string, string]) error {
	_, _, err := w.s.Update(rec.Key, func(string, bool) (string, error) { return rec.Value, nil })
	return err
}

func (w *valueWriter) Close() error { return nil }

// TestAppendSerializeWritesWhatSerializeWrites: a store whose value serde
// is a SerdeAppender stores, and holds for the changelog, the bytes a store
// with Serialize does, for values that grow and shrink past the length the
// appender reserves room for, and redeliveries are recognised the same.
func TestAppendSerializeWritesWhatSerializeWrites(t *testing.T) {
	plain := SerdeFuncs(String().Serialize, String().Deserialize)
	require.Nil(t, appender(plain))
	require.NotNil(t, appender(String()))
	run := func(vs Serde[string]) *storeCore {
		b := NewBuilder()
		b.AddStore(KeyValueStoreBuilder("s", String(), vs))
		Process(Source(b, "in", String(), String()), "w", func() Processor[string, string, string, string] { return &valueWriter{} }, "s")
		task, pipe := pipeTask(t, b)
		defer task.mu.Unlock()
		for i, kv := range [][2]string{{"a", "x"}, {"a", "a much longer value"}, {"b", "mid"}, {"a", ""}, {"b", "y"}, {"c", "0123456789"}} {
			pipe(int64(i), kv[0], kv[1])
		}
		pipe(2, "b", "redelivered, not applied")
		return task.stores["s"]
	}
	appended, serialized := run(String()), run(plain)
	for k, want := range map[string]string{"a": "", "b": "y", "c": "0123456789"} {
		ra, found, err := appended.backend.Get([]byte(k))
		require.NoError(t, err)
		require.True(t, found)
		rs, _, err := serialized.backend.Get([]byte(k))
		require.NoError(t, err)
		require.Equal(t, rs, ra, "stored bytes of %s", k)
		require.Equal(t, serialized.dirty[k], appended.dirty[k], "changelog bytes of %s", k)
		v, _, err := appended.typed.(KeyValueStore[string, string]).Get(k)
		require.NoError(t, err)
		require.Equal(t, want, v)
	}
}
