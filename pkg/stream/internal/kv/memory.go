package kv

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"unsafe"

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
// key, which in a large tree would be a cache miss per comparison. Sixteen,
// not eight: window keys begin with 8 bytes that thousands of keys share (a
// close index's window end; a key's bytes followed by the window start), and
// with 8 bytes every such comparison went to the key bytes (bytes.Compare was
// a tenth of the CPU at 10,000 keys per window, issue #14).
//
// The key and the value are one allocation, the value right after the key,
// and the item holds one pointer to it and the two lengths: 32 bytes instead
// of the 64 of two slice headers, one object for the allocator and the
// garbage collector instead of two (at 1,000,000 windows per store, the tree
// nodes and the key and value objects were most of the heap).
type memItem struct {
	pfx, pfx2  uint64
	p          *byte // the key's first byte, the value following it
	klen, vlen uint32
}

// key returns the item's key. The bytes are never modified.
func (x memItem) key() []byte { return unsafe.Slice(x.p, x.klen) }

// value returns the item's value, a non-nil slice (an empty value read back
// is present), never modified. Slicing the whole allocation, not adding
// klen to the pointer, keeps a zero-length value from pointing past the
// end of the allocation.
func (x memItem) value() []byte {
	n := int(x.klen) + int(x.vlen)
	return unsafe.Slice(x.p, n)[x.klen:n:n]
}

// kvItem builds a tree item for the adjacent key and value kv[:klen] and
// kv[klen:]; kv is kept.
func kvItem(kv []byte, klen int) memItem {
	if kv == nil {
		kv = []byte{}
	}
	p1, p2 := keyPrefix(kv[:klen])
	return memItem{pfx: p1, pfx2: p2, p: unsafe.SliceData(kv), klen: uint32(klen), vlen: uint32(len(kv) - klen)}
}

// joined returns key and value as one slice, key first: the arrays
// themselves when value already follows key in one array (as from
// kv[:n] and kv[n:]), else a copy.
func joined(key, value []byte) []byte {
	if len(value) == 0 {
		return key
	}
	if cap(key)-len(key) >= len(value) && unsafe.SliceData(key[len(key):cap(key)]) == unsafe.SliceData(value) {
		return key[:len(key)+len(value)]
	}
	return concat(key, value)
}

// concat returns a new array holding key followed by value.
func concat(key, value []byte) []byte {
	b := make([]byte, len(key)+len(value))
	copy(b, key)
	copy(b[len(key):], value)
	return b
}

// probe builds a search item for key; the slice is not retained.
func probe(key []byte) memItem {
	p1, p2 := keyPrefix(key)
	return memItem{pfx: p1, pfx2: p2, p: unsafe.SliceData(key), klen: uint32(len(key))}
}

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
	if a.klen <= 16 && b.klen <= 16 {
		// Both keys are in their prefixes (zero-padded): the shorter one
		// sorts first.
		return a.klen < b.klen
	}
	return bytes.Compare(a.key(), b.key()) < 0
}

var _ Store = (*memStore)(nil)

// memStore is the in-memory Store. Items are immutable once inserted (an
// overwrite replaces the item), which lets iterators and GetShared hand out
// the stored slices without copying.
type memStore struct {
	mu     sync.RWMutex
	tree   *btree.BTreeG[memItem] // nil once closed
	closed atomic.Bool            // shared with iterators so they can stop after Close
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
	return cloneBytes(it.value()), true, nil
}

func (s *memStore) Put(key, value []byte) error {
	// Copy outside the lock to keep the critical section short for readers.
	kv := concat(key, value)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tree == nil {
		return ErrClosed
	}
	s.tree.ReplaceOrInsert(kvItem(kv, len(key)))
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
	if !ok {
		return nil, false, nil
	}
	return it.value(), true, nil
}

// PutOwned keeps key and value without copying them when value directly
// follows key in one array (key = b[:n], value = b[n:]); otherwise it
// copies them into one allocation. Either way the tree is descended once.
func (s *memStore) PutOwned(key, value []byte) error {
	kv := joined(key, value)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tree == nil {
		return ErrClosed
	}
	s.tree.ReplaceOrInsert(kvItem(kv, len(key)))
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
		if it.to != nil && bytes.Compare(x.key(), it.to) >= 0 {
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
	last := it.buf[len(it.buf)-1].key()
	it.resume = append(append(make([]byte, 0, len(last)+1), last...), 0)
}

func (it *memIter) Key() []byte   { return it.cur.key() }
func (it *memIter) Value() []byte { return it.cur.value() }
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
