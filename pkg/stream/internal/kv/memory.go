package kv

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/google/btree"
)

// memDegree is the B-tree degree. 32 keeps nodes around a few cache lines of
// item headers, a common sweet spot for google/btree.
const memDegree = 32

// memChunk is how many entries a memory iterator pulls from the tree at a
// time. google/btree only offers callback iteration, so the iterator resumes
// with a fresh descent per chunk; larger chunks amortise that descent.
const memChunk = 64

// memItem caches the first 16 key bytes as two big-endian integers.
// Comparing those inline settles most comparisons without dereferencing the
// key slices, which in a large tree would be a cache miss per comparison.
// Sixteen, not eight: window keys begin with 8 bytes that thousands of keys
// share (a close index's window end; a key's bytes followed by the window
// start), and with 8 bytes every such comparison went to the slices
// (bytes.Compare was a tenth of the CPU at 10,000 keys per window, issue #14).
type memItem struct {
	pfx, pfx2  uint64
	key, value []byte
}

// item builds a tree item for key and value; both slices are kept.
func item(key, value []byte) memItem {
	p1, p2 := keyPrefix(key)
	return memItem{pfx: p1, pfx2: p2, key: key, value: value}
}

// probe builds a search item for key; the slice is not retained.
func probe(key []byte) memItem { return item(key, nil) }

// keyPrefix returns the first 16 bytes of key, zero-padded, as two
// big-endian integers: if two padded prefixes differ, the first differing
// byte is either present in both keys or a padding zero against a real byte
// of a longer key with an identical prefix, so the integer order always
// agrees with bytes.Compare.
func keyPrefix(key []byte) (uint64, uint64) {
	if len(key) >= 16 {
		return binary.BigEndian.Uint64(key), binary.BigEndian.Uint64(key[8:])
	}
	var b [16]byte
	copy(b[:], key)
	return binary.BigEndian.Uint64(b[:]), binary.BigEndian.Uint64(b[8:])
}

func memLess(a, b memItem) bool {
	if a.pfx != b.pfx {
		return a.pfx < b.pfx
	}
	if a.pfx2 != b.pfx2 {
		return a.pfx2 < b.pfx2
	}
	return bytes.Compare(a.key, b.key) < 0
}

var _ Store = (*memStore)(nil)

// memStore is the in-memory Store. Items are immutable once inserted (an
// overwrite replaces the item), which lets iterators hand out the stored
// slices without copying.
type memStore struct {
	mu     sync.RWMutex
	tree   *btree.BTreeG[memItem] // nil once closed
	closed atomic.Bool            // shared with iterators so they can stop after Close

	// memo is the key GetShared looked up last, as a slice that is never
	// modified (the stored key, or a copy when the key was missing), so
	// the PutOwned of the same key that usually follows (a read-modify-
	// write) can store it with one tree descent instead of a lookup and
	// an insert. A stored key's bytes never change, so reusing the slice
	// is right whatever was written in between; memo only has to match.
	memoMu sync.Mutex
	memo   []byte
}

// NewMemory returns an empty in-memory Store backed by a B-tree. Range
// iterates a copy-on-write clone of the tree, so iterators never block or
// race with the writer.
func NewMemory() Store {
	return &memStore{tree: btree.NewG(memDegree, memLess)}
}

func (s *memStore) Get(key []byte) ([]byte, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.tree == nil {
		return nil, false, ErrClosed
	}
	it, ok := s.tree.Get(probe(key))
	if !ok {
		return nil, false, nil
	}
	// Stored values are shared with open iterators, so the caller gets its
	// own copy to mutate.
	return cloneBytes(it.value), true, nil
}

func (s *memStore) Put(key, value []byte) error {
	// Copy outside the lock to keep the critical section short for readers.
	k, v := cloneBytes(key), cloneBytes(value)
	if k == nil {
		k = []byte{}
	}
	if v == nil {
		v = []byte{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tree == nil {
		return ErrClosed
	}
	s.tree.ReplaceOrInsert(item(k, v))
	return nil
}

// GetShared returns the stored slice itself: items are immutable once
// inserted, so it stays valid (and unchanged) however the key is written later.
func (s *memStore) GetShared(key []byte) ([]byte, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.tree == nil {
		return nil, false, ErrClosed
	}
	it, ok := s.tree.Get(probe(key))
	k := it.key
	if !ok {
		// PutOwned would copy the key anyway.
		k = cloneBytes(key)
		if k == nil {
			k = []byte{}
		}
	}
	s.memoMu.Lock()
	s.memo = k
	s.memoMu.Unlock()
	return it.value, ok, nil
}

// takeMemo returns the memo if it equals key (and forgets it), else nil.
func (s *memStore) takeMemo(key []byte) []byte {
	s.memoMu.Lock()
	defer s.memoMu.Unlock()
	m := s.memo
	s.memo = nil
	if m == nil || !bytes.Equal(m, key) {
		return nil
	}
	return m
}

// PutOwned keeps value without copying it, and reuses the stored key slice
// when the key exists, so overwriting a key allocates nothing. Right after
// a GetShared of the same key it takes the key from there and descends the
// tree once.
func (s *memStore) PutOwned(key, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	k := s.takeMemo(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tree == nil {
		return ErrClosed
	}
	if k != nil {
		s.tree.ReplaceOrInsert(item(k, value))
		return nil
	}
	if it, ok := s.tree.Get(probe(key)); ok {
		it.value = value
		s.tree.ReplaceOrInsert(it)
		return nil
	}
	k = cloneBytes(key)
	if k == nil {
		k = []byte{}
	}
	s.tree.ReplaceOrInsert(item(k, value))
	return nil
}

func (s *memStore) Delete(key []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tree == nil {
		return ErrClosed
	}
	s.tree.Delete(probe(key))
	return nil
}

func (s *memStore) Range(from, to []byte) (Iterator, error) {
	// Clone rewrites the tree's copy-on-write context, so it needs the write
	// lock even though Range is logically a read. It is O(1).
	s.mu.Lock()
	if s.tree == nil {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if emptyRange(from, to) {
		s.mu.Unlock()
		return emptyIter{}, nil
	}
	snap := s.tree.Clone()
	s.mu.Unlock()
	return &memIter{
		tree:   snap,
		closed: &s.closed,
		resume: cloneBytes(from),
		to:     cloneBytes(to),
		pos:    -1,
	}, nil
}

func (s *memStore) ApproximateLen() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.tree == nil {
		return 0
	}
	return int64(s.tree.Len())
}

func (s *memStore) Flush() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.tree == nil {
		return ErrClosed
	}
	return nil
}

func (s *memStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tree == nil {
		return ErrClosed
	}
	s.tree = nil
	s.closed.Store(true)
	return nil
}

// memIter pulls entries from a private clone of the tree in chunks.
type memIter struct {
	tree   *btree.BTreeG[memItem] // private snapshot; nil once closed
	closed *atomic.Bool
	resume []byte // first key of the next chunk (inclusive); nil = tree start
	to     []byte
	done   bool // the tree has no entries left in range beyond buf
	buf    []memItem
	pos    int
	cur    memItem
	err    error
}

func (it *memIter) Next() bool {
	if it.tree == nil || it.err != nil {
		return false
	}
	// Without this check the snapshot would keep working after Close; the
	// Pebble backend cannot offer that, so both behave the same way.
	if it.closed.Load() {
		it.err = ErrClosed
		it.release()
		return false
	}
	it.pos++
	if it.pos >= len(it.buf) {
		if it.done {
			it.cur = memItem{}
			return false
		}
		it.fill()
		if len(it.buf) == 0 {
			it.cur = memItem{}
			return false
		}
		it.pos = 0
	}
	it.cur = it.buf[it.pos]
	return true
}

func (it *memIter) fill() {
	if it.buf == nil {
		it.buf = make([]memItem, 0, memChunk)
	}
	it.buf = it.buf[:0]
	full := false
	visit := func(x memItem) bool {
		if it.to != nil && bytes.Compare(x.key, it.to) >= 0 {
			return false
		}
		it.buf = append(it.buf, x)
		if len(it.buf) == memChunk {
			full = true
			return false
		}
		return true
	}
	if it.resume == nil {
		it.tree.Ascend(visit)
	} else {
		it.tree.AscendGreaterOrEqual(probe(it.resume), visit)
	}
	if !full {
		it.done = true
		return
	}
	// last+0x00 is the smallest key strictly greater than last, so the next
	// descent starts right after it without re-visiting it.
	last := it.buf[len(it.buf)-1].key
	it.resume = append(append(make([]byte, 0, len(last)+1), last...), 0)
}

func (it *memIter) Key() []byte   { return it.cur.key }
func (it *memIter) Value() []byte { return it.cur.value }
func (it *memIter) Err() error    { return it.err }

func (it *memIter) Close() error {
	it.release()
	return nil
}

// release drops the snapshot so the nodes only it still references can be
// garbage collected even if the caller keeps the iterator around.
func (it *memIter) release() {
	it.tree = nil
	it.buf = nil
	it.cur = memItem{}
}
