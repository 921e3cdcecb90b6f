package window

import (
	"encoding/binary"
	"math"
	"slices"

	"github.com/google/btree"
)

// openSet holds the index keys (see indexKey: the end first) of the open
// windows of an aggregation (aggProcessor.open).
type openSet interface {
	// Has reports whether ik is in the set.
	Has(ik string) bool
	// Add puts ik in the set.
	Add(ik string)
	// Delete takes ik out of the set and reports whether it was there.
	Delete(ik string) bool
	// AscendRange calls fn for the keys in [from, to), in order, until fn
	// returns false. from and to are index keys or time bounds (timeBound);
	// fn must not change the set.
	AscendRange(from, to string, fn func(ik string) bool)
	// FirstEnd returns the smallest end of a window in the set that is at
	// least end, or math.MaxInt64 if there is none.
	FirstEnd(end int64) int64
}

// newOpenSet returns an empty open set: for time windows (derived state,
// ends on a grid) one hash set per end, else one B-tree.
func newOpenSet(derived bool) openSet {
	if derived {
		return &gridOpen{byEnd: map[int64]*endKeys{}}
	}
	return treeOpen{btree.NewG(32, func(a, b string) bool { return a < b })}
}

// treeOpen is an openSet in one B-tree of index keys.
type treeOpen struct{ t *btree.BTreeG[string] }

func (o treeOpen) Has(ik string) bool { return o.t.Has(ik) }
func (o treeOpen) Add(ik string)      { o.t.ReplaceOrInsert(ik) }

func (o treeOpen) Delete(ik string) bool {
	_, ok := o.t.Delete(ik)
	return ok
}

func (o treeOpen) AscendRange(from, to string, fn func(ik string) bool) {
	o.t.AscendRange(from, to, fn)
}

func (o treeOpen) FirstEnd(end int64) int64 {
	first := int64(math.MaxInt64)
	o.t.AscendGreaterOrEqual(string(timeBound(end)), func(ik string) bool {
		first = getTime([]byte(ik[:8]))
		return false
	})
	return first
}

// gridOpen is an openSet for time windows: a hash set of index keys per
// window end, and the ends in order. Tumbling and hopping windows share a
// few ends (one per advance), so membership, the hot path, is a hash lookup
// instead of a B-tree search and insert, and the keys of an end are sorted
// only when they are iterated, in practice once, when the end closes
// (issue #14: at 10,000 keys per window the B-tree was a tenth of the CPU).
type gridOpen struct {
	byEnd map[int64]*endKeys
	ends  []int64 // the keys of byEnd, ascending
}

// endKeys holds the open windows of one end.
type endKeys struct {
	keys map[string]struct{}
	// sorted holds keys in order when !stale. It is replaced, never
	// modified, so an iteration over it is safe from later changes.
	sorted []string
	stale  bool
}

// endOf returns the end encoded in index key or time bound ik (8 bytes or
// more).
func endOf(ik string) int64 {
	return int64(binary.BigEndian.Uint64([]byte(ik[:8])) ^ (1 << 63))
}

func (o *gridOpen) Has(ik string) bool {
	e := o.byEnd[endOf(ik)]
	if e == nil {
		return false
	}
	_, ok := e.keys[ik]
	return ok
}

func (o *gridOpen) Add(ik string) {
	end := endOf(ik)
	e := o.byEnd[end]
	if e == nil {
		e = &endKeys{keys: map[string]struct{}{}}
		o.byEnd[end] = e
		i, _ := slices.BinarySearch(o.ends, end)
		o.ends = slices.Insert(o.ends, i, end)
	}
	if _, ok := e.keys[ik]; !ok {
		e.keys[ik] = struct{}{}
		e.stale = true
	}
}

func (o *gridOpen) Delete(ik string) bool {
	end := endOf(ik)
	e := o.byEnd[end]
	if e == nil {
		return false
	}
	if _, ok := e.keys[ik]; !ok {
		return false
	}
	delete(e.keys, ik)
	e.stale = true
	if len(e.keys) == 0 {
		delete(o.byEnd, end)
		i, _ := slices.BinarySearch(o.ends, end)
		o.ends = slices.Delete(o.ends, i, i+1)
	}
	return true
}

func (o *gridOpen) AscendRange(from, to string, fn func(ik string) bool) {
	if from >= to {
		return
	}
	lo, hi := endOf(from), endOf(to)
	i, _ := slices.BinarySearch(o.ends, lo)
	// The ends may change under fn only if fn breaks its contract; iterate
	// a copy of the ones in range all the same.
	var ends []int64
	for ; i < len(o.ends) && o.ends[i] <= hi; i++ {
		ends = append(ends, o.ends[i])
	}
	for _, end := range ends {
		e := o.byEnd[end]
		if e.stale {
			e.sorted = make([]string, 0, len(e.keys))
			for k := range e.keys {
				e.sorted = append(e.sorted, k)
			}
			slices.Sort(e.sorted)
			e.stale = false
		}
		for _, ik := range e.sorted {
			if ik < from {
				continue
			}
			if ik >= to || !fn(ik) {
				return
			}
		}
	}
}

func (o *gridOpen) FirstEnd(end int64) int64 {
	i, _ := slices.BinarySearch(o.ends, end)
	if i == len(o.ends) {
		return math.MaxInt64
	}
	return o.ends[i]
}
