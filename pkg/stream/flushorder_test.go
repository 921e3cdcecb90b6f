package stream

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/emostream/emostream/pkg/stream/internal/kv"

	"github.com/stretchr/testify/require"
)

// ackingEnv is a LocalRunner whose stores have a changelog held back by a
// record cache, as an App's are: it records every changelog record sent,
// leaves them unacknowledged until waitStoreAcks, and checks at each send
// that no earlier-declared store of the task has unsent or unacknowledged
// writes.
type ackingEnv struct {
	*LocalRunner
	rc       *recordCache
	unacked  map[*storeCore]int
	sent     []string
	waits    []string
	problems []string
}

func (e *ackingEnv) recordCache() *recordCache { return e.rc }

func (e *ackingEnv) send(t *task, r *outRecord) error {
	if r.store == nil {
		return e.LocalRunner.send(t, r)
	}
	for _, name := range t.sub.stores {
		c := t.stores[name]
		if c == r.store {
			break
		}
		if e.unacked[c] > 0 || len(c.dirty) > 0 {
			e.problems = append(e.problems, fmt.Sprintf("%s/%s sent while %s has %d unacknowledged and %d unsent writes",
				r.store.name, r.key, c.name, e.unacked[c], len(c.dirty)))
		}
	}
	e.unacked[r.store]++
	e.sent = append(e.sent, r.store.name+"/"+string(r.key))
	return nil
}

func (e *ackingEnv) stillOwner(*task) error { return nil }

func (e *ackingEnv) waitStoreAcks(_ *task, c *storeCore) error {
	e.waits = append(e.waits, c.name)
	e.unacked[c] = 0 // Kafka acknowledges them all
	return nil
}

// pairWriter writes each record's key to store "first", then to "second".
type pairWriter struct{ first, second KeyValueStore[string, string] }

func (p *pairWriter) Init(ctx ProcessorContext[string, string]) error {
	var err error
	if p.first, err = GetKeyValueStore[string, string](ctx, "first"); err != nil {
		return err
	}
	p.second, err = GetKeyValueStore[string, string](ctx, "second")
	return err
}

func (p *pairWriter) Process(_ ProcessorContext[string, string], rec Record[string, string]) error {
	if err := p.first.Put(rec.Key, rec.Value); err != nil {
		return err
	}
	return p.second.Put(rec.Key, rec.Value)
}

func (p *pairWriter) Close() error { return nil }

// TestFlushSendsStoresInDeclarationOrder: a task's held-back changelog writes
// go out store by store in declaration order, a store's only once Kafka has
// acknowledged the earlier stores' — when the record cache overflows and at
// a commit — so a later store's changelog never gets ahead of an earlier
// one's after a crash.
func TestFlushSendsStoresInDeclarationOrder(t *testing.T) {
	b := NewBuilder()
	b.AddStore(KeyValueStoreBuilder("first", String(), String()))
	b.AddStore(KeyValueStoreBuilder("second", String(), String()))
	src := Source(b, "in", String(), String())
	Process(src, "pair", func() Processor[string, string, string, string] { return &pairWriter{} }, "second", "first")
	task, env := ackingTask(t, b, 1000)
	defer task.mu.Unlock()
	require.Equal(t, []string{"first", "second"}, task.sub.stores, "declaration order, not the processor's order")

	for i := range 200 {
		k := fmt.Sprintf("k%03d", i%40)
		r := &inRecord{topic: "in", offset: int64(i), key: []byte(k), value: []byte("v"), timestamp: time.UnixMilli(int64(i))}
		require.NoError(t, task.process(r))
	}
	task.flushStores() // the commit's flush
	require.NoError(t, task.err)
	require.Emptyf(t, env.problems[:min(len(env.problems), 3)], "%d writes out of order", len(env.problems))
	require.NotEmpty(t, env.waits, "the cache overflowed: the task flushed before the commit")
	require.Empty(t, task.stores["first"].dirty)
	require.Empty(t, task.stores["second"].dirty)
	// Every write reached a changelog: the last value of each of the 40 keys.
	seen := map[string]bool{}
	for _, s := range env.sent {
		seen[s] = true
	}
	require.Len(t, seen, 80)
	for _, w := range env.waits {
		require.Equal(t, "first", w, "only an earlier store is waited for")
	}
}

// reusedKeySerde serializes a []byte key as the slice itself, as a raw-bytes
// serde does, so a processor that reuses one key buffer hands the store the
// same array on every write.
type reusedKeySerde struct{}

func (reusedKeySerde) Serialize(b []byte) ([]byte, error)   { return b, nil }
func (reusedKeySerde) Deserialize(b []byte) ([]byte, error) { return append([]byte(nil), b...), nil }

// reusingWriter writes every record through one key buffer it overwrites each
// time, and deletes the keys whose value is "delete".
type reusingWriter struct {
	s   KeyValueStore[[]byte, string]
	buf []byte
}

func (p *reusingWriter) Init(ctx ProcessorContext[string, string]) error {
	var err error
	p.s, err = GetKeyValueStore[[]byte, string](ctx, "kv")
	return err
}

func (p *reusingWriter) Process(_ ProcessorContext[string, string], rec Record[string, string]) error {
	p.buf = append(p.buf[:0], rec.Key...)
	if rec.Value == "delete" {
		return p.s.Delete(p.buf)
	}
	return p.s.Put(p.buf, rec.Value)
}

func (p *reusingWriter) Close() error { return nil }

// pebbleEnv is an ackingEnv whose stores are Pebble stores under dir.
type pebbleEnv struct {
	*ackingEnv
	dir string
}

func (e *pebbleEnv) openBackend(t *task, spec *storeSpec, _ string) (kv.Store, int64, error) {
	s, _, err := kv.OpenPebble(filepath.Join(e.dir, fmt.Sprintf("%s-%d", spec.name, t.id.Partition)))
	return s, 0, err
}

// TestStoreKeepsNoCallerKeyBuffer: a store and its record cache keep their
// own key bytes (the store layer writes key and value into one array the
// backend then keeps), so a key buffer the caller overwrites after each
// write changes neither the stored keys and values nor the changelog
// records sent later from the record cache; in memory and in Pebble.
func TestStoreKeepsNoCallerKeyBuffer(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		t.Run(fmt.Sprintf("persistent=%v", persistent), func(t *testing.T) {
			b := NewBuilder()
			b.AddStore(KeyValueStoreBuilder("kv", Serde[[]byte](reusedKeySerde{}), String()))
			src := Source(b, "in", String(), String())
			Process(src, "w", func() Processor[string, string, string, string] { return &reusingWriter{} }, "kv")
			top, err := b.Build()
			require.NoError(t, err)
			l, err := NewLocalRunner(top)
			require.NoError(t, err)
			var env taskEnv = &ackingEnv{LocalRunner: l, rc: &recordCache{max: 1 << 20}, unacked: map[*storeCore]int{}}
			acking := env.(*ackingEnv)
			if persistent {
				env = &pebbleEnv{ackingEnv: acking, dir: t.TempDir()}
			}
			task, err := newTask(top, top.subs[0], 0, env, taskStart{})
			require.NoError(t, err)
			core := task.stores["kv"]
			t.Cleanup(func() { _ = core.backend.Close() })
			task.mu.Lock()
			defer task.mu.Unlock()
			want, written := map[string]string{}, map[string]bool{}
			for i := range 300 {
				k := fmt.Sprintf("key-%02d-%s", i%50, "padding-beyond-sixteen-bytes"[:i%29])
				v := fmt.Sprintf("v%d", i)
				if i%7 == 3 {
					v = "delete"
					delete(want, k)
				} else {
					want[k] = v
				}
				written[k] = true
				r := &inRecord{topic: "in", offset: int64(i), key: []byte(k), value: []byte(v), timestamp: time.UnixMilli(int64(i))}
				require.NoError(t, task.process(r))
			}
			require.NoError(t, task.err)

			it, err := core.backend.Range(nil, nil)
			require.NoError(t, err)
			got := map[string]string{}
			for it.Next() {
				v, _, err := scanEnvelope(it.Value(), writePosition{})
				require.NoError(t, err)
				got[string(it.Key())] = string(v)
			}
			require.NoError(t, it.Err())
			require.NoError(t, it.Close())
			require.Equal(t, want, got, "the stored keys and values")

			task.flushStores() // the record cache's changelog records go out now
			require.NoError(t, task.err)
			sent := map[string]bool{}
			for _, s := range acking.sent {
				sent[s] = true
			}
			wantSent := map[string]bool{}
			for k := range written {
				wantSent["kv/"+k] = true
			}
			require.Equal(t, wantSent, sent, "one changelog record per key written, under its own key")
		})
	}
}
