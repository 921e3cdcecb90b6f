package window

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// expiryQueue holds the closed time windows of a task until they expire:
// for each window end, in ascending order, the key bytes and start of every
// window of the store with that end. It replaces the close index's entries
// for tumbling and hopping windows (see aggProcessor.derived): a closed
// window costs its key bytes plus nine bytes here, and no changelog record.
// It is rebuilt from the window store when a task starts.
type expiryQueue struct {
	ends  []int64          // ascending, one per bucket
	byEnd map[int64][]byte // per end: uvarint(len(kb)) | kb | start (8 bytes), repeated
}

// add records the closed window [start, end) of key kb.
func (q *expiryQueue) add(kb []byte, start, end int64) {
	if q.byEnd == nil {
		q.byEnd = map[int64][]byte{}
	}
	b, ok := q.byEnd[end]
	if !ok {
		// Windows close in end order: a new end is nearly always the last.
		if n := len(q.ends); n == 0 || q.ends[n-1] < end {
			q.ends = append(q.ends, end)
		} else {
			i, _ := slices.BinarySearch(q.ends, end)
			q.ends = slices.Insert(q.ends, i, end)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(kb)))
	b = append(b, kb...)
	q.byEnd[end] = binary.BigEndian.AppendUint64(b, uint64(start))
}

// trim gives back the spare capacity of the bucket of end, once the windows
// closing there were added.
func (q *expiryQueue) trim(end int64) {
	if b, ok := q.byEnd[end]; ok && cap(b) > len(b)+len(b)/4 {
		q.byEnd[end] = bytes.Clone(b)
	}
}

// len returns the number of windows held.
func (q *expiryQueue) len() int {
	n := 0
	for _, end := range q.ends {
		_ = eachQueued(q.byEnd[end], func([]byte, int64) error { n++; return nil })
	}
	return n
}

// each calls fn for every window with an end in (after, upTo], by end, and
// within an end in the order they were added.
func (q *expiryQueue) each(after, upTo int64, fn func(kb []byte, start, end int64) error) error {
	i, _ := slices.BinarySearch(q.ends, after+1)
	for _, end := range q.ends[i:] {
		if end > upTo {
			break
		}
		if err := eachQueued(q.byEnd[end], func(kb []byte, start int64) error { return fn(kb, start, end) }); err != nil {
			return err
		}
	}
	return nil
}

// popUpTo calls fn for every window with end <= upTo, oldest end first, and
// removes them (those of an end whose fn call failed stay).
func (q *expiryQueue) popUpTo(upTo int64, fn func(kb []byte, start, end int64) error) error {
	n := 0
	defer func() { q.ends = q.ends[n:] }()
	for _, end := range q.ends {
		if end > upTo {
			break
		}
		if err := eachQueued(q.byEnd[end], func(kb []byte, start int64) error { return fn(kb, start, end) }); err != nil {
			return err
		}
		delete(q.byEnd, end)
		n++
	}
	return nil
}

// eachQueued decodes a bucket of expiryQueue.
func eachQueued(b []byte, fn func(kb []byte, start int64) error) error {
	for len(b) > 0 {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) || uint64(len(b)-k)-l < 8 {
			return ErrCorruptKey
		}
		kb := b[k : k+int(l)]
		b = b[k+int(l):]
		if err := fn(kb, int64(binary.BigEndian.Uint64(b))); err != nil {
			return err
		}
		b = b[8:]
	}
	return nil
}
