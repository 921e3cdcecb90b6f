package stream

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// cacheCounter counts records per key in store "counts" with Update; a
// record whose value is "del" deletes its key instead, and one whose value
// is "spill" also writes, from inside Update's function, enough to store
// "other" to overflow the record cache (which flushes every store).
type cacheCounter struct {
	counts, other KeyValueStore[string, int64]
}

func (c *cacheCounter) Init(ctx ProcessorContext[string, string]) error {
	var err error
	if c.counts, err = GetKeyValueStore[string, int64](ctx, "counts"); err != nil {
		return err
	}
	c.other, err = GetKeyValueStore[string, int64](ctx, "other")
	return err
}

func (c *cacheCounter) Process(_ ProcessorContext[string, string], rec Record[string, string]) error {
	if rec.Value == "del" {
		return c.counts.Delete(rec.Key)
	}
	_, _, err := c.counts.Update(rec.Key, func(old int64, _ bool) (int64, error) {
		if rec.Value == "spill" {
			for i := range 50 {
				if err := c.other.Put(fmt.Sprintf("spill-%02d", i), int64(i)); err != nil {
					return 0, err
				}
			}
		}
		return old + 1, nil
	})
	return err
}

func (c *cacheCounter) Close() error { return nil }

// TestUpdateReadsTheRecordCache: Update reads a key written since the last
// flush from the record cache instead of the backend (kvStore.Update,
// storeCore.pending). What it reads there is what the backend holds: counts
// stay exact through updates, a deletion held in the cache, a redelivered
// record (recognised as applied) and a flush caused from inside Update's
// function, after which the cache's byte accounting still matches its
// entries.
// cacheCounterTopology counts "in" with a cacheCounter.
func cacheCounterTopology() *Builder {
	b := NewBuilder()
	b.AddStore(KeyValueStoreBuilder("counts", String(), Int64()))
	b.AddStore(KeyValueStoreBuilder("other", String(), Int64()))
	src := Source(b, "in", String(), String())
	Process(src, "count", func() Processor[string, string, string, string] { return &cacheCounter{} }, "counts", "other")
	return b
}

func TestUpdateReadsTheRecordCache(t *testing.T) {
	// Room for a few keys: the 50 puts of a "spill" overflow it.
	task, env := ackingTask(t, cacheCounterTopology(), 2000)
	defer task.mu.Unlock()
	counts := task.stores["counts"]
	off := int64(0)
	pipe := func(k, v string) {
		r := &inRecord{topic: "in", offset: off, key: []byte(k), value: []byte(v), timestamp: time.UnixMilli(off)}
		off++
		require.NoError(t, task.process(r))
		require.NoError(t, task.err)
	}
	// sameAsBackend checks every key the cache holds against the backend.
	sameAsBackend := func() {
		t.Helper()
		for k, v := range counts.dirty {
			got, found, err := counts.backend.Get([]byte(k))
			require.NoError(t, err)
			require.Equal(t, v != nil, found, "key %q", k)
			if v != nil {
				require.Equal(t, v, got, "key %q", k)
			}
		}
	}
	// accounted checks the budget's bookkeeping against the entries.
	accounted := func() {
		t.Helper()
		var total int64
		for _, c := range task.stores {
			var want int64
			for k, v := range c.dirty {
				want += int64(len(k)+len(v)) + cacheEntryOverhead
			}
			require.Equal(t, want, c.dirtyBytes, "store %s", c.name)
			total += want
		}
		require.Equal(t, total, env.rc.used.Load())
	}
	get := func(k string) (int64, bool) {
		v, found, err := counts.typed.(KeyValueStore[string, int64]).Get(k)
		require.NoError(t, err)
		return v, found
	}

	for range 5 {
		pipe("a", "x")
		pipe("b", "x")
	}
	require.Len(t, counts.dirty, 2, "both keys held in the cache")
	sameAsBackend()
	accounted()
	v, _ := get("a")
	require.Equal(t, int64(5), v)

	// A redelivered record: read from the cache, recognised as applied.
	r := &inRecord{topic: "in", offset: off - 2, key: []byte("a"), value: []byte("x"), timestamp: time.UnixMilli(off - 2)}
	require.NoError(t, task.process(r))
	v, _ = get("a")
	require.Equal(t, int64(5), v, "a redelivered record counted again")

	// A deletion held in the cache: the next update starts from nothing.
	pipe("a", "del")
	require.Contains(t, counts.dirty, "a")
	require.Nil(t, counts.dirty["a"])
	pipe("a", "x")
	v, _ = get("a")
	require.Equal(t, int64(1), v, "counted on from a deleted value")
	sameAsBackend()
	accounted()

	// A flush from inside Update's function: the cache is emptied between
	// Update's read of it and its write.
	pipe("b", "spill")
	v, _ = get("b")
	require.Equal(t, int64(6), v)
	require.NotEmpty(t, env.waits, "the spill overflowed the cache")
	sameAsBackend()
	accounted()
	pipe("b", "x")
	v, _ = get("b")
	require.Equal(t, int64(7), v)
	sameAsBackend()
	accounted()
}

// TestGetReadsStoredBytesInPlace: KeyValueStore.Get parses the stored entry
// in place (kv.Store.GetShared) instead of copying it and collecting its
// dedup positions: reading a count allocates only its serialized key.
func TestGetReadsStoredBytesInPlace(t *testing.T) {
	task, pipe := pipeTask(t, cacheCounterTopology())
	defer task.mu.Unlock()
	for i := range 10 {
		pipe(int64(i), "a", "x")
	}
	s := task.stores["counts"].typed.(KeyValueStore[string, int64])
	v, found, err := s.Get("a")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, int64(10), v)
	allocs := testing.AllocsPerRun(100, func() { _, _, _ = s.Get("a") })
	require.LessOrEqual(t, allocs, 1.0, "allocations per Get")
}
