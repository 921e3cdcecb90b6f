package kv

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIngestMatchesModel runs rounds of random writes through Ingest (and,
// between them, Put, Delete and WriteBatch, so ingested tables overlap the
// memtable, flushed tables and pending writes) on every backend and
// compares the whole store with a map after each round. Keys share long
// prefixes and vary in length around the 16 bytes Ingest's sort compares
// as integers, and repeat within a run. (The empty key has a test of its
// own: Pebble's invariant checks in race builds panic when a table with it
// is flushed.)
func TestIngestMatchesModel(t *testing.T) {
	for _, b := range append(backends(), backend{"plain", func(t testing.TB) Store { return plainStore{closeLater(t, NewMemory())} }}) {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			rng := rand.New(rand.NewPCG(7, 11))
			model := map[string]string{}
			key := func() []byte {
				// "\x0auser-00" + up to 14 more bytes: 1..24 bytes, so keys
				// shorter than, equal to and longer than 16 bytes, many
				// equal in their first 16.
				k := []byte("\x0auser-000000000000000000")[:1+rng.IntN(24)]
				k = slices.Clone(k)
				if len(k) > 0 {
					k[len(k)-1] = byte('a' + rng.IntN(4))
				}
				if len(k) > 12 {
					k[12] = byte('0' + rng.IntN(3))
				}
				return k
			}
			for round := range 30 {
				n := rng.IntN(400)
				ops := make([]Op, n)
				for i := range ops {
					k := key()
					if rng.IntN(4) == 0 {
						ops[i] = Op{Key: k, Delete: true}
						continue
					}
					ops[i] = Op{Key: k, Value: fmt.Appendf(nil, "r%d-%d", round, i)}
				}
				require.NoError(t, Ingest(s, ops))
				for _, op := range ops {
					if op.Delete {
						delete(model, string(op.Key))
					} else {
						model[string(op.Key)] = string(op.Value)
					}
				}
				// Other writes in between.
				for range rng.IntN(20) {
					k := key()
					if rng.IntN(3) == 0 {
						require.NoError(t, s.Delete(k))
						delete(model, string(k))
					} else {
						v := fmt.Sprintf("put%d", round)
						require.NoError(t, s.Put(k, []byte(v)))
						model[string(k)] = v
					}
				}
				if round%7 == 3 {
					require.NoError(t, s.Flush())
				}
				it, err := s.Range(nil, nil)
				require.NoError(t, err)
				got := collect(t, it)
				var want []kvPair
				for k, v := range model {
					want = append(want, kvPair{k, v})
				}
				slices.SortFunc(want, func(a, b kvPair) int { return compareStrings(a.k, b.k) })
				require.Equal(t, want, got, "round %d", round)
				for k, v := range model {
					got, ok, err := s.Get([]byte(k))
					require.NoError(t, err)
					require.True(t, ok, "%q", k)
					require.Equal(t, v, string(got))
				}
			}
		})
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestIngestSurvivesReopen: ingested data is in the store after a clean
// close and reopen, and the ingest's own file is gone; a leftover of an
// interrupted ingest is removed at the next open.
func TestIngestSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, _, err := OpenPebble(dir)
	require.NoError(t, err)
	require.NoError(t, s.Put([]byte("b"), []byte("old")))
	require.NoError(t, Ingest(s, []Op{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")}}))
	left, err := filepath.Glob(filepath.Join(dir, ingestPrefix+"*"))
	require.NoError(t, err)
	require.Empty(t, left)
	require.NoError(t, s.Close())
	stray := filepath.Join(dir, ingestPrefix+"99.sst")
	require.NoError(t, writeFile(stray))

	s, clean, err := OpenPebble(dir)
	require.NoError(t, err)
	closeLater(t, s)
	require.True(t, clean)
	require.NoFileExists(t, stray)
	for k, want := range map[string]string{"a": "1", "b": "2"} {
		v, ok, err := s.Get([]byte(k))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, want, string(v))
	}
	require.ErrorIs(t, errClosedIngest(t), ErrClosed)
}

func writeFile(path string) error {
	fd, err := syscall.Open(path, syscall.O_CREAT|syscall.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return syscall.Close(fd)
}

// errClosedIngest is Ingest's error on a closed store.
func errClosedIngest(t *testing.T) error {
	s := openPebble(t, t.TempDir())
	require.NoError(t, s.Close())
	return Ingest(s, []Op{{Key: []byte("a")}})
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRestoreRun: a restore of 250,000 changelog records (24-byte keys
// sharing their first 10 bytes, 40-byte values, in random key order) into
// a fresh Pebble store, in batches of 1,024 (WriteBatch) or as two runs
// (Ingest), up to the data being in tables (a flush). cpu-ms/op counts
// every goroutine, Pebble's flushes and compactions included.
func BenchmarkRestoreRun(b *testing.B) {
	const total = 250_000
	for _, mode := range []string{"batch", "ingest"} {
		b.Run(mode, func(b *testing.B) {
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				s := openPebble(b, b.TempDir()).(*pebbleStore)
				ops := make([]Op, total)
				for i := range ops {
					k := make([]byte, 24)
					copy(k, "\x0auser-0000")
					benchKey(k[8:], i)
					ops[i] = Op{Key: k, Value: make([]byte, 40)}
				}
				b.StartTimer()
				c0 := cpuTime()
				step := 1024
				if mode == "ingest" {
					step = total/2 + 1
				}
				for i := 0; i < total; i += step {
					run := ops[i:min(i+step, total)]
					var err error
					if mode == "ingest" {
						err = Ingest(s, run)
					} else {
						err = WriteBatch(s, run)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				if err := s.db.Flush(); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c0
			}
			b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// TestIngestEmptyKey: a run holding only the empty key (which Pebble's table
// writer cannot write alone) is applied, put and deletion.
func TestIngestEmptyKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		require.NoError(t, Ingest(s, []Op{{Key: []byte{}, Value: []byte("1")}, {Key: nil, Value: []byte("2")}}))
		v, ok, err := s.Get(nil)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "2", string(v))
		require.NoError(t, Ingest(s, []Op{{Key: nil, Delete: true}, {Key: []byte("a"), Value: []byte("x")}}))
		_, ok, err = s.Get(nil)
		require.NoError(t, err)
		require.False(t, ok)
		v, ok, err = s.Get([]byte("a"))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "x", string(v))
	})
}
