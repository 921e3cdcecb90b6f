package kv

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// markerName is the file whose presence proves the store was closed cleanly.
// The runtime keeps its changelog checkpoint inside the store; without the
// marker it cannot know whether that checkpoint matches the data (writes are
// not synced), so the only safe choice is to start empty and restore from the
// changelog.
const markerName = "CLEAN"

// lockName is Pebble's directory lock file. It must survive a wipe: deleting
// a held lock file would let another process lock a fresh inode while we
// still believe we own the directory.
const lockName = "LOCK"

// defaultCacheSize is the block cache size when PebbleCacheSize is not given.
// Pebble charges its memtables (up to 2 x memTableSize once a store is busy)
// against the block cache, so its own 8 MiB default leaves no room for data
// blocks once the memtables are full and every read that misses the memtable
// goes to disk; 48 MiB keeps at least 16 MiB for blocks. The cache takes
// memory only as blocks are read.
const defaultCacheSize = 48 << 20

// memTableSize and l0CompactionThreshold are the Pebble settings OpenPebble
// changes from Pebble's defaults (4 MiB, 4 files); see OpenPebble.
const (
	memTableSize          = 16 << 20
	l0CompactionThreshold = 8
)

// defaultLenRefresh bounds how often ApproximateLen rescans the database.
const defaultLenRefresh = 5 * time.Second

// PebbleOpt configures OpenPebble.
type PebbleOpt func(*pebbleConfig)

type pebbleConfig struct {
	fs        vfs.FS
	cacheSize int64
	logger    *slog.Logger
}

// PebbleLogger sends Pebble's own logs (flushes and compactions at Debug,
// background errors at Error) to l instead of slog.Default(). nil keeps the
// default.
func PebbleLogger(l *slog.Logger) PebbleOpt {
	return func(c *pebbleConfig) {
		if l != nil {
			c.logger = l
		}
	}
}

// PebbleMemFS makes OpenPebble use a fresh in-memory filesystem (the CLEAN
// marker lives there too). Each call to OpenPebble gets its own empty
// filesystem, so this suits tests and examples, not persistence.
func PebbleMemFS() PebbleOpt {
	return func(c *pebbleConfig) { c.fs = vfs.NewMem() }
}

// PebbleCacheSize sets the size in bytes of Pebble's block cache (default 48
// MiB). Pebble reserves the memory of its memtables (up to two of 16 MiB
// once a store has taken that many writes) from this budget, so small sizes
// leave little room for cached blocks.
// Values <= 0 keep the default.
func PebbleCacheSize(bytes int64) PebbleOpt {
	return func(c *pebbleConfig) {
		if bytes > 0 {
			c.cacheSize = bytes
		}
	}
}

var _ Store = (*pebbleStore)(nil)

// pebbleStore is the Pebble-backed Store.
//
// mu is held shared by every operation that touches db and exclusively by
// Close, so Close never pulls the database out from under a running call.
// Open iterators do not hold mu (a goroutine holding an iterator and calling
// Get would otherwise deadlock against a pending Close); Close invalidates
// them explicitly instead.
type pebbleStore struct {
	mu sync.RWMutex
	db *pebble.DB // nil once closed
	// opts are the options db was opened with (Ingest writes tables with
	// them).
	opts *pebble.Options
	// pend holds the writes not yet handed to Pebble (see pendingWrites).
	pend   pendingWrites
	lock   *pebble.Lock
	fs     vfs.FS
	dir    string
	writes atomic.Uint64 // bumped on every write; tells ApproximateLen whether its count is stale

	itersMu sync.Mutex
	iters   map[*pebbleIter]struct{}

	lenMu      sync.Mutex
	lenCount   int64
	lenWrites  uint64 // value of writes when lenCount was computed
	lenAt      time.Time
	lenValid   bool
	lenRefresh time.Duration
}

// OpenPebble opens (creating if needed) a Pebble-backed Store in dir.
//
// clean reports whether the previous owner closed the store cleanly, i.e.
// whether its contents, including any changelog checkpoint stored in it, can
// be trusted. When the CLEAN marker is missing, any existing contents of dir
// are deleted and the store starts empty, so the caller must restore it from
// the changelog. The marker is removed before OpenPebble returns, so a crash
// from then on is detected at the next open.
//
// The directory is locked for the lifetime of the store; opening it twice,
// even within one process, fails instead of wiping a live database.
func OpenPebble(dir string, opts ...PebbleOpt) (store Store, clean bool, err error) {
	cfg := pebbleConfig{fs: vfs.Default, cacheSize: defaultCacheSize, logger: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	fs := cfg.fs
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, false, fmt.Errorf("kv: create %s: %w", dir, err)
	}
	// Lock before looking at the marker or wiping: another live instance
	// in dir must make us fail, not lose its data.
	lock, err := pebble.LockDirectory(dir, fs)
	if err != nil {
		return nil, false, fmt.Errorf("kv: lock %s: %w", dir, err)
	}
	defer func() {
		if store == nil {
			_ = lock.Close()
		}
	}()

	marker := fs.PathJoin(dir, markerName)
	switch _, err := fs.Stat(marker); {
	case err == nil:
		clean = true
	case errors.Is(err, iofs.ErrNotExist):
		if err := wipeDir(fs, dir); err != nil {
			return nil, false, err
		}
	default:
		return nil, false, fmt.Errorf("kv: stat %s: %w", marker, err)
	}

	popts := &pebble.Options{
		FS:                 fs,
		Lock:               lock,
		CacheSize:          cfg.cacheSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             slogLogger{l: cfg.logger.With("component", "pebble")},
	}
	// State stores do a point lookup per record, and many are for keys not
	// stored yet (first event of an aggregation key, join misses). Bloom
	// filters let such a Get skip every table instead of reading its index
	// and data blocks; 10 bits/key (~1% false positives) is cheap. Deeper
	// levels inherit L0's policy.
	popts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	// A restore (and a task writing many keys) fills memtables fast: with
	// Pebble's 4 MiB memtables and a compaction at 4 L0 files, half of a
	// 250,000-record restore's CPU went to flushing and re-compacting
	// (issue #14). Memtables of up to 16 MiB (Pebble starts each store at
	// 256 KiB and doubles, so a small store stays small) and L0 compactions
	// from 8 files on cut BenchmarkRestore's CPU by about a third; point
	// lookups still skip most L0 files through the bloom filters.
	popts.MemTableSize = memTableSize
	popts.L0CompactionThreshold = l0CompactionThreshold
	// Ingest writes its tables with these options (bloom filters,
	// compression), so they must be complete before Open copies them.
	popts.EnsureDefaults()
	if clean {
		// A crash in the middle of an Ingest can leave its table behind.
		if err := removeIngestFiles(fs, dir); err != nil {
			return nil, false, err
		}
	}
	db, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, false, fmt.Errorf("kv: open pebble %s: %w", dir, err)
	}
	if clean {
		// The marker is removed only after a successful open: opening does not
		// change the logical contents, so until this point a crash still
		// leaves a trustworthy store behind.
		err = fs.Remove(marker)
		if err == nil {
			err = syncDir(fs, dir)
		}
		if err != nil {
			_ = db.Close()
			return nil, false, fmt.Errorf("kv: remove clean marker in %s: %w", dir, err)
		}
	}
	return &pebbleStore{
		db:         db,
		opts:       popts,
		lock:       lock,
		fs:         fs,
		dir:        dir,
		iters:      make(map[*pebbleIter]struct{}),
		lenRefresh: defaultLenRefresh,
	}, clean, nil
}

// wipeDir deletes everything in dir except the lock file we hold.
func wipeDir(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return fmt.Errorf("kv: list %s: %w", dir, err)
	}
	removed := false
	for _, name := range names {
		if name == lockName {
			continue
		}
		if err := fs.RemoveAll(fs.PathJoin(dir, name)); err != nil {
			return fmt.Errorf("kv: wipe %s: %w", dir, err)
		}
		removed = true
	}
	if !removed {
		return nil
	}
	// Persist the deletions so a crash right after cannot resurrect old
	// files next to the new database.
	return syncDir(fs, dir)
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// writeMarker creates the CLEAN marker durably: the file content and its
// directory entry are both synced, otherwise a power loss after Close could
// lose the marker (harmless, forces a restore) or, worse, keep a marker
// whose directory entry landed before the data it vouches for.
func writeMarker(fs vfs.FS, dir string) error {
	f, err := fs.Create(fs.PathJoin(dir, markerName), vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte("clean\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syncDir(fs, dir)
}

// pendingWrites are the latest writes of a pebbleStore that Pebble has not
// received yet, one per key (nil: a deletion), in a map with its own lock.
//
// Pebble commits every write through its commit pipeline (a batch, the WAL
// append, the memtable insert); a task writes its store once or twice per
// record, mostly the same few keys again (at 16 distinct keys per window
// half of the disk engine's CPU went there, issue #14). Holding the writes
// here coalesces rewrites of a key and hands Pebble one batch per
// maxPendingBytes, before any Range, Flush, ApproximateLen or Close, so
// everything Pebble is asked reflects every write made before. Reads look
// here first. Nothing is lost that was promised: durability comes from the
// changelog, Flush (the commit point) commits them, and a store not closed
// cleanly is wiped at the next open anyway.
type pendingWrites struct {
	mu    sync.Mutex
	m     map[string][]byte
	bytes int
}

// maxPendingBytes bounds the pending writes (keys, values and a per-entry
// allowance) of one store; beyond it they are committed to Pebble.
const maxPendingBytes = 1 << 20

// pendingEntryOverhead approximates a pending entry's bookkeeping beyond
// its key and value bytes.
const pendingEntryOverhead = 48

// get returns the pending write of key: its value (nil for a deletion) and
// whether there is one.
func (p *pendingWrites) get(key []byte) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[string(key)]
	return v, ok
}

// commitPending hands the pending writes to Pebble as one batch, without
// syncing. The caller holds s.mu (shared or exclusive) and db is open.
func (s *pebbleStore) commitPending() error {
	s.pend.mu.Lock()
	defer s.pend.mu.Unlock()
	return s.commitPendingLocked()
}

// commitPendingLocked is commitPending with s.pend.mu held.
func (s *pebbleStore) commitPendingLocked() error {
	if len(s.pend.m) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	for k, v := range s.pend.m {
		// The batch copies the key: no need for a []byte copy of it first.
		kb := unsafe.Slice(unsafe.StringData(k), len(k))
		var err error
		if v == nil {
			err = b.Delete(kb, nil)
		} else {
			err = b.Set(kb, v, nil)
		}
		if err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	clear(s.pend.m)
	s.pend.bytes = 0
	return nil
}

// write records a write of key (value nil: a deletion) among the pending
// ones, committing them when they exceed maxPendingBytes. value is kept.
func (s *pebbleStore) write(key, value []byte) error {
	return s.writeKey(key, value, false)
}

// writeOwned is write for a key the store may keep (the caller never
// modifies it): a new pending key's map entry uses its bytes.
func (s *pebbleStore) writeOwned(key, value []byte) error {
	return s.writeKey(key, value, true)
}

func (s *pebbleStore) writeKey(key, value []byte, owned bool) error {
	if s.db == nil {
		return ErrClosed
	}
	s.pend.mu.Lock()
	defer s.pend.mu.Unlock()
	if s.pend.m == nil {
		s.pend.m = make(map[string][]byte)
	}
	if old, ok := s.pend.m[string(key)]; ok {
		s.pend.bytes -= len(old)
	} else {
		s.pend.bytes += len(key) + pendingEntryOverhead
	}
	if !owned {
		key = cloneBytes(key)
	}
	// The map takes the key's bytes as they are (an assignment to an
	// existing key stores the new key too): they are never modified.
	s.pend.m[unsafe.String(unsafe.SliceData(key), len(key))] = value
	s.pend.bytes += len(value)
	s.writes.Add(1)
	if s.pend.bytes > maxPendingBytes {
		return s.commitPendingLocked()
	}
	return nil
}

func (s *pebbleStore) Get(key []byte) ([]byte, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, false, ErrClosed
	}
	if v, ok := s.pend.get(key); ok {
		if v == nil {
			return nil, false, nil
		}
		return cloneBytes(v), true, nil
	}
	return s.getPebble(key)
}

// getPebble reads key from Pebble itself, as a copy.
func (s *pebbleStore) getPebble(key []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	// Pebble's slice is only valid until closer.Close; always allocate so
	// an empty value still reads as present-and-non-nil like the memory backend.
	out := make([]byte, len(v))
	copy(out, v)
	return out, true, closer.Close()
}

// Put writes without syncing (see pendingWrites): durability comes from the
// Kafka changelog, and Flush syncs the WAL at commit points.
func (s *pebbleStore) Put(key, value []byte) error {
	return s.PutOwned(cloneBytes(key), cloneBytes(value))
}

// GetShared returns a pending write's own slice, or Pebble's value as a copy
// (Pebble's slice does not outlive the read).
func (s *pebbleStore) GetShared(key []byte) ([]byte, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, false, ErrClosed
	}
	if v, ok := s.pend.get(key); ok {
		return v, v != nil, nil
	}
	return s.getPebble(key)
}

// PutOwned is Put that keeps key and value until they are committed to
// Pebble.
func (s *pebbleStore) PutOwned(key, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.writeOwned(key, value)
}

// Delete writes a tombstone without syncing, for the same reason as Put.
func (s *pebbleStore) Delete(key []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.write(key, nil)
}

// Range returns a Pebble iterator; Pebble iterators already read an implicit
// snapshot fixed at creation, so no explicit Snapshot is needed.
func (s *pebbleStore) Range(from, to []byte) (Iterator, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	if emptyRange(from, to) {
		return emptyIter{}, nil
	}
	if err := s.commitPending(); err != nil {
		return nil, err
	}
	if len(from) == 0 {
		// An empty lower bound already means "from the start"; passing it
		// as nil avoids a Pebble invariants-build (race) crash on an empty
		// non-nil bound.
		from = nil
	}
	// Pebble keeps referencing the bounds, and the caller may reuse its slices.
	pit, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: cloneBytes(from),
		UpperBound: cloneBytes(to),
	})
	if err != nil {
		return nil, err
	}
	it := &pebbleIter{store: s, it: pit}
	s.itersMu.Lock()
	s.iters[it] = struct{}{}
	s.itersMu.Unlock()
	return it, nil
}

// ApproximateLen counts keys with a full key scan and caches the result.
//
// An exact running count would need a read before every write to tell
// inserts from overwrites (stream stores are overwrite-heavy), and Pebble's
// sstable statistics double count overwritten keys and ignore the memtable.
// Instead the scan is done lazily, only when asked: the cached count is
// returned as long as nothing was written since it was computed (then it is
// exact) or it is younger than lenRefresh (then it may lag by the writes of
// the last few seconds). The scan reads a snapshot and does not block
// writers; concurrent callers share one scan.
func (s *pebbleStore) ApproximateLen() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return 0
	}
	s.lenMu.Lock()
	defer s.lenMu.Unlock()
	writes := s.writes.Load()
	if s.lenValid && (writes == s.lenWrites || time.Since(s.lenAt) < s.lenRefresh) {
		return s.lenCount
	}
	if err := s.commitPending(); err != nil {
		return s.lenCount
	}
	it, err := s.db.NewIter(nil)
	if err != nil {
		return s.lenCount
	}
	var n int64
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		// Keep the previous estimate rather than publish a partial count.
		return s.lenCount
	}
	s.lenCount, s.lenWrites, s.lenAt, s.lenValid = n, writes, time.Now(), true
	return n
}

// Flush syncs the WAL by committing an empty, synced LogData record.
//
// Writes are appended to the WAL in commit order and a synced record is only
// acknowledged once the WAL is fsynced up to and including it, so this makes
// every earlier NoSync write durable for the price of one fsync. db.Flush
// would instead write the memtable out as a new L0 sstable: far more I/O per
// call, and at stream commit frequency it would litter L0 with tiny files and
// drive needless compactions. After a crash Pebble replays the WAL, so
// syncing it is all durability requires.
func (s *pebbleStore) Flush() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	if err := s.commitPending(); err != nil {
		return err
	}
	return s.db.LogData(nil, pebble.Sync)
}

// Close invalidates open iterators, syncs the WAL, closes Pebble and, only if
// all of that succeeded, writes the CLEAN marker so the next OpenPebble can
// trust the contents. The directory lock is held until after the marker is
// written so no other opener can observe a half-closed store.
func (s *pebbleStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return ErrClosed
	}
	// A failed commit leaves the store without its CLEAN marker: the next
	// open wipes it and the changelog restores it.
	pendErr := s.commitPending()
	db := s.db
	s.db = nil

	// Copy the set first: pebbleIter.Close takes its own mutex before
	// itersMu, so holding itersMu while closing them would invert the order.
	s.itersMu.Lock()
	open := make([]*pebbleIter, 0, len(s.iters))
	for it := range s.iters {
		open = append(open, it)
	}
	clear(s.iters)
	s.itersMu.Unlock()
	for _, it := range open {
		it.invalidate()
	}

	err := pendErr
	if err == nil {
		err = db.LogData(nil, pebble.Sync)
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = writeMarker(s.fs, s.dir)
	}
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("kv: close pebble %s: %w", s.dir, err)
	}
	return nil
}

func (s *pebbleStore) forget(it *pebbleIter) {
	s.itersMu.Lock()
	delete(s.iters, it)
	s.itersMu.Unlock()
}

// pebbleIter wraps a Pebble iterator. Its mutex exists only so Store.Close,
// running on another goroutine, can close the Pebble iterator safely; the
// iterator itself is still meant for a single goroutine.
type pebbleIter struct {
	mu        sync.Mutex
	store     *pebbleStore
	it        *pebble.Iterator // nil once closed
	started   bool
	exhausted bool
	err       error
}

func (i *pebbleIter) Next() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.it == nil || i.exhausted {
		return false
	}
	var ok bool
	if !i.started {
		i.started = true
		ok = i.it.First()
	} else {
		ok = i.it.Next()
	}
	if !ok {
		i.exhausted = true
		if err := i.it.Error(); err != nil && i.err == nil {
			i.err = err
		}
	}
	return ok
}

// Key returns Pebble's buffer directly; copying every key would double the
// cost of a scan for callers that only decode it.
func (i *pebbleIter) Key() []byte {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.it == nil || !i.started || i.exhausted {
		return nil
	}
	return i.it.Key()
}

// Value may have to fetch a separated value lazily; a failure is reported
// through Err and ends the iteration, since Value itself has no error result.
func (i *pebbleIter) Value() []byte {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.it == nil || !i.started || i.exhausted {
		return nil
	}
	v, err := i.it.ValueAndErr()
	if err != nil {
		if i.err == nil {
			i.err = err
		}
		i.exhausted = true
		return nil
	}
	return v
}

func (i *pebbleIter) Err() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.err
}

func (i *pebbleIter) Close() error {
	i.mu.Lock()
	if i.it == nil {
		i.mu.Unlock()
		return nil
	}
	err := i.it.Close()
	i.it = nil
	i.mu.Unlock()
	i.store.forget(i)
	return err
}

// invalidate is called by Store.Close for iterators the caller left open;
// Pebble refuses to close a DB with live iterators.
func (i *pebbleIter) invalidate() {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.it == nil {
		return
	}
	_ = i.it.Close()
	i.it = nil
	if !i.exhausted && i.err == nil {
		i.err = ErrClosed
	}
}

// slogLogger routes Pebble's logging through slog: routine info messages
// (flushes, compactions, WAL recycling) go to Debug so they stay out of
// normal output, while errors remain visible. Pebble's default event
// listener logs background errors, disk slowness and the like through it
// too.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Infof(format string, args ...any) {
	if s.l.Enabled(context.Background(), slog.LevelDebug) {
		s.l.Debug(fmt.Sprintf(format, args...))
	}
}

func (s slogLogger) Errorf(format string, args ...any) {
	s.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf panics rather than exiting like Pebble's default logger: a library
// should not terminate the process itself, and Pebble requires that Fatalf
// does not return.
func (s slogLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.l.Error(msg)
	panic("pebble: " + msg)
}
