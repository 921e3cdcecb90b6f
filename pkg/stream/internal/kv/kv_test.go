package kv

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

type backend struct {
	name string
	open func(t testing.TB) Store
}

// backends lists every Store implementation; each test runs against all of
// them so the backends stay interchangeable.
func backends() []backend {
	return []backend{
		{"memory", func(t testing.TB) Store { return closeLater(t, NewMemory()) }},
		{"pebble", func(t testing.TB) Store { return openPebble(t, t.TempDir()) }},
		{"pebble-memfs", func(t testing.TB) Store { return openPebble(t, "db", PebbleMemFS()) }},
	}
}

func openPebble(t testing.TB, dir string, opts ...PebbleOpt) Store {
	t.Helper()
	s, clean, err := OpenPebble(dir, opts...)
	require.NoError(t, err)
	require.False(t, clean, "a fresh directory has no clean marker")
	// Tests want ApproximateLen to reflect each write immediately.
	s.(*pebbleStore).lenRefresh = 0
	return closeLater(t, s)
}

func closeLater(t testing.TB, s Store) Store {
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func forEachBackend(t *testing.T, fn func(t *testing.T, s Store)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { fn(t, b.open(t)) })
	}
}

type kvPair struct{ k, v string }

func collect(t *testing.T, it Iterator) []kvPair {
	t.Helper()
	var out []kvPair
	for it.Next() {
		out = append(out, kvPair{string(it.Key()), string(it.Value())})
	}
	require.NoError(t, it.Err())
	require.NoError(t, it.Close())
	return out
}

func TestGetPutDelete(t *testing.T) {
	type op struct {
		kind    string // put, del, get
		k, v    string
		found   bool
		wantLen int64
	}
	cases := []struct {
		name string
		ops  []op
	}{
		{"missing", []op{{kind: "get", k: "a", found: false}}},
		{"put then get", []op{
			{kind: "put", k: "a", v: "1", wantLen: 1},
			{kind: "get", k: "a", v: "1", found: true},
		}},
		{"overwrite", []op{
			{kind: "put", k: "a", v: "1", wantLen: 1},
			{kind: "put", k: "a", v: "2", wantLen: 1},
			{kind: "get", k: "a", v: "2", found: true},
		}},
		{"delete", []op{
			{kind: "put", k: "a", v: "1", wantLen: 1},
			{kind: "put", k: "b", v: "2", wantLen: 2},
			{kind: "del", k: "a", wantLen: 1},
			{kind: "get", k: "a", found: false},
			{kind: "get", k: "b", v: "2", found: true},
		}},
		{"delete missing", []op{{kind: "del", k: "zz", wantLen: 0}}},
		{"empty value", []op{
			{kind: "put", k: "a", v: "", wantLen: 1},
			{kind: "get", k: "a", v: "", found: true},
		}},
		{"re-put after delete", []op{
			{kind: "put", k: "a", v: "1", wantLen: 1},
			{kind: "del", k: "a", wantLen: 0},
			{kind: "put", k: "a", v: "3", wantLen: 1},
			{kind: "get", k: "a", v: "3", found: true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, s Store) {
				for i, o := range tc.ops {
					switch o.kind {
					case "put":
						require.NoError(t, s.Put([]byte(o.k), []byte(o.v)), "op %d", i)
						require.Equal(t, o.wantLen, s.ApproximateLen(), "op %d", i)
					case "del":
						require.NoError(t, s.Delete([]byte(o.k)), "op %d", i)
						require.Equal(t, o.wantLen, s.ApproximateLen(), "op %d", i)
					case "get":
						v, ok, err := s.Get([]byte(o.k))
						require.NoError(t, err, "op %d", i)
						require.Equal(t, o.found, ok, "op %d", i)
						if o.found {
							require.NotNil(t, v, "op %d: found values are non-nil", i)
							require.Equal(t, o.v, string(v), "op %d", i)
						}
					}
				}
			})
		})
	}
}

func TestCopies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		k, v := []byte("key"), []byte("value")
		require.NoError(t, s.Put(k, v))
		// The store must not alias the caller's buffers.
		k[0], v[0] = 'X', 'X'
		got, ok, err := s.Get([]byte("key"))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "value", string(got))
		// Nor may the caller's copy alias the store.
		got[0] = 'Y'
		again, _, _ := s.Get([]byte("key"))
		require.Equal(t, "value", string(again))
	})
}

func TestRange(t *testing.T) {
	keys := []string{"d", "b", "a", "e", "c", "bb", "", "\xff"}
	all := []kvPair{{"", "v"}, {"a", "va"}, {"b", "vb"}, {"bb", "vbb"}, {"c", "vc"}, {"d", "vd"}, {"e", "ve"}, {"\xff", "v\xff"}}
	cases := []struct {
		name     string
		from, to []byte
		want     []kvPair
	}{
		{"all", nil, nil, all},
		{"from", []byte("b"), nil, all[2:]},
		{"to", nil, []byte("c"), all[:4]},
		{"both", []byte("b"), []byte("d"), all[2:5]},
		{"between keys", []byte("ba"), []byte("cc"), all[3:5]},
		{"empty from is start", []byte{}, []byte("a"), all[:1]},
		{"past end", []byte("\xff\x00"), nil, nil},
		{"equal bounds", []byte("c"), []byte("c"), nil},
		{"inverted", []byte("d"), []byte("b"), nil},
		{"empty to", nil, []byte{}, nil},
	}
	forEachBackend(t, func(t *testing.T, s Store) {
		for _, k := range keys {
			require.NoError(t, s.Put([]byte(k), []byte("v"+k)))
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				it, err := s.Range(tc.from, tc.to)
				require.NoError(t, err)
				require.Equal(t, tc.want, collect(t, it))
			})
		}
	})
}

// TestRangeLarge crosses the memory iterator's chunk boundaries.
func TestRangeLarge(t *testing.T) {
	const n = 1000
	forEachBackend(t, func(t *testing.T, s Store) {
		for i := range n {
			require.NoError(t, s.Put(fmt.Appendf(nil, "k%05d", i), fmt.Appendf(nil, "%d", i)))
		}
		for _, lim := range []struct{ from, to, want int }{{0, n, n}, {10, 138, 128}, {63, 64 * 3, 64*3 - 63}, {500, 501, 1}} {
			it, err := s.Range(fmt.Appendf(nil, "k%05d", lim.from), fmt.Appendf(nil, "k%05d", lim.to))
			require.NoError(t, err)
			got := collect(t, it)
			require.Len(t, got, lim.want)
			for j, p := range got {
				require.Equal(t, fmt.Sprintf("k%05d", lim.from+j), p.k)
			}
		}
	})
}

func TestRangeSnapshot(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		for _, k := range []string{"a", "b", "c"} {
			require.NoError(t, s.Put([]byte(k), []byte("old")))
		}
		it, err := s.Range(nil, nil)
		require.NoError(t, err)
		require.True(t, it.Next())
		require.Equal(t, "a", string(it.Key()))

		require.NoError(t, s.Put([]byte("b"), []byte("new")))
		require.NoError(t, s.Delete([]byte("c")))
		require.NoError(t, s.Put([]byte("d"), []byte("new")))

		rest := collect(t, it)
		require.Equal(t, []kvPair{{"b", "old"}, {"c", "old"}}, rest)

		it, err = s.Range(nil, nil)
		require.NoError(t, err)
		require.Equal(t, []kvPair{{"a", "old"}, {"b", "new"}, {"d", "new"}}, collect(t, it))
	})
}

// TestConcurrentReadersAndWriter is mostly for -race: the task goroutine
// writes while query goroutines iterate and Get.
func TestConcurrentReadersAndWriter(t *testing.T) {
	const keys = 500
	forEachBackend(t, func(t *testing.T, s Store) {
		key := func(i int) []byte { return fmt.Appendf(nil, "k%04d", i%keys) }
		for i := range keys {
			require.NoError(t, s.Put(key(i), []byte("0")))
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for r := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if r%2 == 0 {
						if _, _, err := s.Get(key(r * 7)); err != nil {
							errs <- err
							return
						}
						_ = s.ApproximateLen()
					}
					it, err := s.Range(nil, nil)
					if err != nil {
						errs <- err
						return
					}
					var prev []byte
					for it.Next() {
						k := it.Key()
						_ = it.Value()
						if prev != nil && bytes.Compare(prev, k) >= 0 {
							errs <- fmt.Errorf("out of order: %q after %q", k, prev)
						}
						prev = append(prev[:0], k...)
					}
					if err := errors.Join(it.Err(), it.Close()); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for i := range 5000 {
			if i%3 == 0 {
				require.NoError(t, s.Delete(key(i*13)))
			} else {
				require.NoError(t, s.Put(key(i*13), fmt.Appendf(nil, "%d", i)))
			}
			if i%1000 == 0 {
				require.NoError(t, s.Flush())
			}
		}
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	})
}

func TestClose(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		require.NoError(t, s.Put([]byte("a"), []byte("1")))
		require.NoError(t, s.Put([]byte("b"), []byte("2")))
		open, err := s.Range(nil, nil)
		require.NoError(t, err)
		require.True(t, open.Next())

		require.NoError(t, s.Close())

		// Iterators left open are invalidated rather than left dangling.
		require.False(t, open.Next())
		require.ErrorIs(t, open.Err(), ErrClosed)
		require.NoError(t, open.Close())

		_, _, err = s.Get([]byte("a"))
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorIs(t, s.Put([]byte("a"), nil), ErrClosed)
		require.ErrorIs(t, s.Delete([]byte("a")), ErrClosed)
		_, err = s.Range(nil, nil)
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorIs(t, s.Flush(), ErrClosed)
		require.Zero(t, s.ApproximateLen())
		require.ErrorIs(t, s.Close(), ErrClosed)
	})
}

func TestIteratorCloseTwice(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		require.NoError(t, s.Put([]byte("a"), []byte("1")))
		it, err := s.Range(nil, nil)
		require.NoError(t, err)
		require.Nil(t, it.Key(), "no current entry before Next")
		require.NoError(t, it.Close())
		require.NoError(t, it.Close())
		require.False(t, it.Next())
		// The store still closes fine once its iterators are gone.
		require.NoError(t, s.Close())
	})
}

func TestPebbleCleanReopen(t *testing.T) {
	dir := t.TempDir()
	s, clean, err := OpenPebble(dir, PebbleCacheSize(1<<20))
	require.NoError(t, err)
	require.False(t, clean)
	require.NoError(t, s.Put([]byte("a"), []byte("1")))
	require.NoError(t, s.Put([]byte("checkpoint"), []byte("42")))
	require.NoError(t, s.Close())
	require.FileExists(t, filepath.Join(dir, markerName))

	s, clean, err = OpenPebble(dir)
	require.NoError(t, err)
	closeLater(t, s)
	require.True(t, clean)
	require.NoFileExists(t, filepath.Join(dir, markerName), "marker must be consumed so a crash is detectable")
	v, ok, err := s.Get([]byte("checkpoint"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "42", string(v))
	require.EqualValues(t, 2, s.ApproximateLen())
}

func TestPebbleCrashWipes(t *testing.T) {
	t.Run("copy of live dir", func(t *testing.T) {
		dir := t.TempDir()
		s := openPebble(t, dir)
		require.NoError(t, s.Put([]byte("a"), []byte("1")))
		require.NoError(t, s.Flush())
		// Copying the directory of a store that was never closed is what a
		// crash leaves on disk.
		crashed := filepath.Join(t.TempDir(), "crashed")
		require.NoError(t, os.CopyFS(crashed, os.DirFS(dir)))

		s2, clean, err := OpenPebble(crashed)
		require.NoError(t, err)
		closeLater(t, s2)
		require.False(t, clean)
		_, ok, err := s2.Get([]byte("a"))
		require.NoError(t, err)
		require.False(t, ok)
		require.Zero(t, s2.ApproximateLen())
	})
	t.Run("marker removed", func(t *testing.T) {
		dir := t.TempDir()
		s, _, err := OpenPebble(dir)
		require.NoError(t, err)
		require.NoError(t, s.Put([]byte("a"), []byte("1")))
		require.NoError(t, s.Close())
		require.NoError(t, os.Remove(filepath.Join(dir, markerName)))

		s, clean, err := OpenPebble(dir)
		require.NoError(t, err)
		closeLater(t, s)
		require.False(t, clean)
		it, err := s.Range(nil, nil)
		require.NoError(t, err)
		require.Empty(t, collect(t, it))
	})
}

func TestPebbleDirLocked(t *testing.T) {
	dir := t.TempDir()
	s := openPebble(t, dir)
	require.NoError(t, s.Put([]byte("a"), []byte("1")))

	// A second open must fail instead of wiping the live database.
	_, _, err := OpenPebble(dir)
	require.Error(t, err)
	v, ok, err := s.Get([]byte("a"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "1", string(v))
}

func TestPebbleApproximateLenCached(t *testing.T) {
	s := openPebble(t, t.TempDir()).(*pebbleStore)
	s.lenRefresh = defaultLenRefresh
	require.NoError(t, s.Put([]byte("a"), nil))
	require.EqualValues(t, 1, s.ApproximateLen())
	// Within the refresh window the count may lag behind writes...
	require.NoError(t, s.Put([]byte("b"), nil))
	require.EqualValues(t, 1, s.ApproximateLen())
	// ...and is recomputed once the window has passed.
	s.lenMu.Lock()
	s.lenAt = s.lenAt.Add(-defaultLenRefresh)
	s.lenMu.Unlock()
	require.EqualValues(t, 2, s.ApproximateLen())
}

// TestCloseWhileIterating checks, under -race, that Close can run while a
// query goroutine is mid-iteration.
func TestCloseWhileIterating(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		for i := range 200 {
			require.NoError(t, s.Put(fmt.Appendf(nil, "k%03d", i), []byte("v")))
		}
		started := make(chan struct{})
		done := make(chan error)
		go func() {
			once := sync.OnceFunc(func() { close(started) })
			for {
				it, err := s.Range(nil, nil)
				if err != nil {
					once()
					done <- err
					return
				}
				for it.Next() {
					once()
					_, _ = it.Key(), it.Value()
				}
				err = errors.Join(it.Err(), it.Close())
				if err != nil {
					done <- err
					return
				}
			}
		}()
		<-started
		require.NoError(t, s.Close())
		require.ErrorIs(t, <-done, ErrClosed)
	})
}

// TestMemLessMatchesBytesCompare guards the inline prefix shortcut of the
// memory backend, especially around short keys and zero bytes.
func TestMemLessMatchesBytesCompare(t *testing.T) {
	var keys [][]byte
	for _, s := range []string{"", "\x00", "\x00\x00", "a", "a\x00", "a\x00\x01", "a\x01", "abcdefgh", "abcdefgh\x00", "abcdefg", "abcdefgi", "\xff\xff\xff\xff\xff\xff\xff\xff", "\xff\xff\xff\xff\xff\xff\xff\xff\x00",
		"abcdefghijklmnop", "abcdefghijklmnop\x00", "abcdefghijklmno", "abcdefghijklmnoq", "abcdefgh\x00\x00\x00\x00\x00\x00\x00\x00",
		"abcdefgh\x00\x00\x00\x00\x00\x00\x00", "abcdefghijklmnopq", "abcdefghijklmnopr", "abcdefghijklmnoo\xff"} {
		keys = append(keys, []byte(s))
	}
	// Every prefix of two keys that differ only after 16 bytes, and of keys
	// that differ in each of the first 17 bytes.
	long := []byte("0123456789abcdefXYZ")
	for i := range long {
		keys = append(keys, long[:i])
		for _, d := range []byte{0, 1, 0xff} {
			k := bytes.Clone(long[:i+1])
			k[i] = d
			keys = append(keys, k)
		}
	}
	for _, a := range keys {
		for _, b := range keys {
			want := bytes.Compare(a, b) < 0
			require.Equal(t, want, memLess(probe(a), probe(b)), "%q < %q", a, b)
		}
	}
}

// withFS lets durability tests run on a crashable in-memory filesystem, whose
// CrashClone keeps only what was actually synced.
func withFS(fs vfs.FS) PebbleOpt { return func(c *pebbleConfig) { c.fs = fs } }

func TestPebbleFlushIsDurable(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s, _, err := OpenPebble("db", withFS(fs))
	require.NoError(t, err)
	closeLater(t, s)
	require.NoError(t, s.Put([]byte("a"), []byte("1")))
	require.NoError(t, s.Delete([]byte("a")))
	require.NoError(t, s.Put([]byte("b"), []byte("2")))
	require.NoError(t, s.Flush())

	// Open the crash image with raw Pebble: OpenPebble would (rightly) wipe
	// it for lack of a marker, but here we check what Flush made durable.
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	db, err := pebble.Open("db", &pebble.Options{FS: crashed, Logger: slogLogger{l: slog.Default()}})
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	v, closer, err := db.Get([]byte("b"))
	require.NoError(t, err)
	require.Equal(t, "2", string(v))
	require.NoError(t, closer.Close())
	_, _, err = db.Get([]byte("a"))
	require.ErrorIs(t, err, pebble.ErrNotFound)
}

func TestPebbleMarkerIsDurable(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s, _, err := OpenPebble("db", withFS(fs))
	require.NoError(t, err)
	require.NoError(t, s.Put([]byte("k"), []byte("v")))
	require.NoError(t, s.Close())

	// Power loss right after Close: marker and data must both survive.
	afterClose := fs.CrashClone(vfs.CrashCloneCfg{})
	s, clean, err := OpenPebble("db", withFS(afterClose))
	require.NoError(t, err)
	closeLater(t, s)
	require.True(t, clean)
	v, ok, err := s.Get([]byte("k"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "v", string(v))

	// Power loss while that store is open: the marker removal must have been
	// synced, or the next open would trust a store that may be mid-write.
	whileOpen := afterClose.CrashClone(vfs.CrashCloneCfg{})
	s2, clean, err := OpenPebble("db", withFS(whileOpen))
	require.NoError(t, err)
	closeLater(t, s2)
	require.False(t, clean)
	require.Zero(t, s2.ApproximateLen())
}

// lockedBuffer is a bytes.Buffer safe for Pebble's background goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Pebble's own logs go to the logger given with PebbleLogger, not to
// slog.Default() (nor stderr).
func TestPebbleLoggerReceivesPebbleLogs(t *testing.T) {
	var buf lockedBuffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("app", "mine")
	var def lockedBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&def, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })

	dir := filepath.Join(t.TempDir(), "db")
	for i := 0; i < 2; i++ {
		s, _, err := OpenPebble(dir, PebbleLogger(l))
		require.NoError(t, err)
		require.NoError(t, s.Put([]byte(fmt.Sprint("k", i)), []byte("v")))
		require.NoError(t, s.Close())
	}
	require.Contains(t, buf.String(), "component=pebble")
	require.Contains(t, buf.String(), "app=mine")
	require.NotContains(t, def.String(), "component=pebble")

	slogLogger{l: l}.Errorf("boom %d", 7)
	require.Contains(t, buf.String(), "level=ERROR msg=\"boom 7\" app=mine")
}

// TestMemoryPutOwnedOneArray checks that the memory store keeps a key and
// the value that follows it in one array as that array (no copy), copies
// them into one array otherwise, and reads every form back right.
func TestMemoryPutOwnedOneArray(t *testing.T) {
	s := closeLater(t, NewMemory())
	kv := []byte("k1value1")
	require.NoError(t, s.PutOwned(kv[:2], kv[2:]))
	v, found, err := s.GetShared([]byte("k1"))
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, "value1", string(v))
	require.Same(t, &kv[2], &v[0], "the value is the caller's array, not a copy")

	// Not adjacent (the key's capacity ends before the value): copied.
	kv2 := []byte("k2value2")
	require.NoError(t, s.PutOwned(kv2[:2:2], kv2[2:]))
	v, found, err = s.GetShared([]byte("k2"))
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, "value2", string(v))
	require.NotSame(t, &kv2[2], &v[0])

	// Separate arrays, an empty value, an empty key.
	require.NoError(t, s.PutOwned([]byte("k3"), []byte("v3")))
	require.NoError(t, s.PutOwned([]byte("k4"), []byte{}))
	require.NoError(t, s.PutOwned([]byte{}, []byte("v0")))
	v, found, err = s.Get([]byte("k4"))
	require.NoError(t, err)
	require.True(t, found)
	require.NotNil(t, v)
	require.Empty(t, v)

	// Overwrite and delete.
	require.NoError(t, s.PutOwned([]byte("k1"), []byte("c")))
	require.NoError(t, s.Delete([]byte("k2")))

	it, err := s.Range(nil, nil)
	require.NoError(t, err)
	var got []string
	for it.Next() {
		got = append(got, string(it.Key())+"="+string(it.Value()))
	}
	require.NoError(t, it.Err())
	require.NoError(t, it.Close())
	require.Equal(t, []string{"=v0", "k1=c", "k3=v3", "k4="}, got)
	require.EqualValues(t, 4, s.ApproximateLen())
}

// TestModel runs a seeded random mix of every Store operation against each
// backend and a map, comparing each read, Range and ApproximateLen. Values
// of up to 64 KiB make the Pebble store's pending writes cross
// maxPendingBytes now and then, so reads are answered from pending writes,
// from Pebble, and from both after a commit; Flush and Range commit them too.
func TestModel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		rng := rand.New(rand.NewPCG(7, 11))
		model := map[string]string{}
		key := func() []byte { return fmt.Appendf(nil, "k%03d", rng.IntN(200)) }
		commits := 0
		for i := range 8000 {
			switch op := rng.IntN(100); {
			case op < 35:
				k := key()
				v := make([]byte, 1+rng.IntN(64))
				if rng.IntN(50) == 0 {
					v = make([]byte, 64<<10)
				}
				for j := range v {
					v[j] = byte('a' + (i+j)%26)
				}
				model[string(k)] = string(v)
				if rng.IntN(2) == 0 {
					require.NoError(t, s.Put(k, v))
					v[0] = '!' // Put copied it
				} else {
					require.NoError(t, s.PutOwned(k, v))
				}
			case op < 50:
				k := key()
				require.NoError(t, s.Delete(k))
				delete(model, string(k))
			case op < 90:
				k := key()
				var v []byte
				var found bool
				var err error
				if op < 70 {
					v, found, err = s.Get(k)
				} else {
					v, found, err = s.GetShared(k)
				}
				require.NoError(t, err)
				want, ok := model[string(k)]
				require.Equal(t, ok, found, "op %d: %s", i, k)
				if ok {
					require.Equal(t, len(want), len(v), "op %d: %s", i, k)
					require.True(t, string(v) == want, "op %d: %s", i, k)
				}
			case op < 96:
				from, to := key(), key()
				if bytes.Compare(from, to) > 0 {
					from, to = to, from
				}
				it, err := s.Range(from, to)
				require.NoError(t, err)
				got := collect(t, it)
				var want []kvPair
				for k, v := range model {
					if k >= string(from) && k < string(to) {
						want = append(want, kvPair{k, v})
					}
				}
				slices.SortFunc(want, func(a, b kvPair) int { return strings.Compare(a.k, b.k) })
				require.Equal(t, len(want), len(got), "op %d: range [%s, %s)", i, from, to)
				for j := range want {
					require.Equal(t, want[j].k, got[j].k, "op %d: range [%s, %s)", i, from, to)
					require.True(t, want[j].v == got[j].v, "op %d: range [%s, %s): value of %s", i, from, to, want[j].k)
				}
				commits++
			case op < 98:
				require.NoError(t, s.Flush())
			default:
				require.EqualValues(t, len(model), s.ApproximateLen(), "op %d", i)
			}
		}
		require.Positive(t, commits)
	})
}
