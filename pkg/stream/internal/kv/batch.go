package kv

import "github.com/cockroachdb/pebble/v2"

// Op is one write of a batch: a put of Value under Key, or, with Delete, a
// deletion of Key.
type Op struct {
	// Key is the key written or deleted.
	Key []byte
	// Value is the value put (ignored by a deletion).
	Value []byte
	// Delete makes the op a deletion of Key.
	Delete bool
}

// Batcher is implemented by stores that apply many writes at once more
// cheaply than one by one (both backends do): the memory store takes its
// lock once, Pebble commits one batch. Restores use it.
type Batcher interface {
	// WriteBatch applies ops in order. The store copies the slices, so the
	// caller may reuse them afterwards. On an error some of the ops may
	// have been applied.
	WriteBatch(ops []Op) error
}

// WriteBatch applies ops to s in order, as one batch when s is a Batcher.
func WriteBatch(s Store, ops []Op) error {
	if b, ok := s.(Batcher); ok {
		return b.WriteBatch(ops)
	}
	for _, op := range ops {
		var err error
		if op.Delete {
			err = s.Delete(op.Key)
		} else {
			err = s.Put(op.Key, op.Value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var (
	_ Batcher = (*memStore)(nil)
	_ Batcher = (*pebbleStore)(nil)
)

// WriteBatch copies every key and value (one allocation each pair) before
// taking the lock once.
func (s *memStore) WriteBatch(ops []Op) error {
	items := make([]memItem, len(ops))
	for i, op := range ops {
		if op.Delete {
			items[i] = probe(op.Key)
			continue
		}
		items[i] = kvItem(concat(op.Key, op.Value), len(op.Key))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tree == nil {
		return ErrClosed
	}
	for i, op := range ops {
		if op.Delete {
			s.tree.Delete(items[i])
		} else {
			s.tree.ReplaceOrInsert(items[i])
		}
	}
	return nil
}

// WriteBatch commits ops as one Pebble batch, without syncing (as Put).
func (s *pebbleStore) WriteBatch(ops []Op) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	// Pending writes are older than ops: they go first.
	if err := s.commitPending(); err != nil {
		return err
	}
	if err := s.writeBatchLocked(ops); err != nil {
		return err
	}
	s.writes.Add(uint64(len(ops)))
	return nil
}

// writeBatchLocked commits ops as one batch; s.mu is held (shared) and
// the pending writes are committed.
func (s *pebbleStore) writeBatchLocked(ops []Op) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, op := range ops {
		var err error
		if op.Delete {
			err = b.Delete(op.Key, nil)
		} else {
			err = b.Set(op.Key, op.Value, nil)
		}
		if err != nil {
			return err
		}
	}
	return b.Commit(pebble.NoSync)
}
