package kv

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Ingester is implemented by stores that take a large run of writes more
// cheaply as a whole than in batches: Pebble sorts the run and adds it to
// the database as one table instead of inserting every write into its
// memtable and flushing it again (a restore of 250,000 records takes less
// than half the CPU, BenchmarkRestoreRun). Restores use it for their big
// chunks.
type Ingester interface {
	// Ingest applies ops as WriteBatch does: in order, so the last op of a
	// key wins. The store does not keep the slices.
	Ingest(ops []Op) error
}

// Ingest applies ops to s as one run: through Ingester when s has it,
// otherwise as WriteBatch.
func Ingest(s Store, ops []Op) error {
	if in, ok := s.(Ingester); ok {
		return in.Ingest(ops)
	}
	return WriteBatch(s, ops)
}

var _ Ingester = (*pebbleStore)(nil)

// ingestPrefix names the table files Ingest writes in the store's
// directory before Pebble takes them over; OpenPebble removes any a crash
// left behind.
const ingestPrefix = "ingest-"

// ingestSeq makes the names of concurrent ingests unique.
var ingestSeq atomic.Uint64

// ingestEntry is one op of an ingest while it is sorted: the first 16 bytes
// of its key as two integers, so most comparisons do not touch the key
// itself, and its position in the run.
type ingestEntry struct {
	p0, p1 uint64
	i      int32
}

// Ingest sorts ops by key, keeps the last op of each key, writes them as a
// table (puts and deletions) and ingests it: Pebble gives the table a
// sequence number above every write before, so it overrides what the store
// held, as a batch would. Writes pending from Put go to Pebble first.
func (s *pebbleStore) Ingest(ops []Op) error {
	if len(ops) == 0 {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	if err := s.commitPending(); err != nil {
		return err
	}
	// Keys of a store often share a long prefix (a window store's index:
	// the window end, then the key's own prefix): the integers are taken
	// after the prefix every key of the run shares.
	lcp := len(ops[0].Key)
	for _, op := range ops[1:] {
		lcp = min(lcp, len(op.Key))
		for i := range lcp {
			if op.Key[i] != ops[0].Key[i] {
				lcp = i
				break
			}
		}
	}
	ents := make([]ingestEntry, len(ops))
	for i, op := range ops {
		var pfx [16]byte
		copy(pfx[:], op.Key[lcp:])
		ents[i] = ingestEntry{binary.BigEndian.Uint64(pfx[:8]), binary.BigEndian.Uint64(pfx[8:]), int32(i)}
	}
	slices.SortFunc(ents, func(a, b ingestEntry) int {
		if a.p0 != b.p0 {
			return cmp.Compare(a.p0, b.p0)
		}
		if a.p1 != b.p1 {
			return cmp.Compare(a.p1, b.p1)
		}
		// Equal 16 bytes after the shared prefix (zero-padded): the rest
		// decides, then the length (a shorter key is padded with zeros),
		// then the position.
		ka, kb := ops[a.i].Key[lcp:], ops[b.i].Key[lcp:]
		if len(ka) > 16 && len(kb) > 16 {
			if c := bytes.Compare(ka[16:], kb[16:]); c != 0 {
				return c
			}
		} else if c := cmp.Compare(len(ka), len(kb)); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	// Pebble's table writer fails on a table whose one key is empty
	// (pebble v2.1.7: "unreachable" in PrefixBytesBuilder.Finish), so the
	// empty key, which sorts first, goes in a batch after the table: its
	// last op is the only one kept, so it may come last.
	var emptyKey []Op
	if len(ops[ents[0].i].Key) == 0 {
		n := 1
		for n < len(ents) && len(ops[ents[n].i].Key) == 0 {
			n++
		}
		emptyKey = []Op{ops[ents[n-1].i]}
		ents = ents[n:]
	}
	if len(ents) > 0 {
		if err := s.ingestTable(ops, ents); err != nil {
			return err
		}
	}
	if emptyKey != nil {
		if err := s.writeBatchLocked(emptyKey); err != nil {
			return err
		}
	}
	s.writes.Add(uint64(len(ops)))
	return nil
}

// ingestTable writes the ops of ents as a table and ingests it.
func (s *pebbleStore) ingestTable(ops []Op, ents []ingestEntry) error {
	path := s.fs.PathJoin(s.dir, fmt.Sprintf("%s%d.sst", ingestPrefix, ingestSeq.Add(1)))
	if err := s.writeTable(path, ops, ents); err != nil {
		_ = s.fs.Remove(path)
		return err
	}
	if err := s.db.Ingest(context.Background(), []string{path}); err != nil {
		_ = s.fs.Remove(path)
		return fmt.Errorf("kv: ingest %s: %w", path, err)
	}
	// Pebble links the file into the database and removes our name for it.
	if err := s.fs.Remove(path); err != nil && !oserror.IsNotExist(err) {
		return err
	}
	return nil
}

// writeTable writes the last op of each key of ops, in the order of the
// sorted ents, as a table at path.
func (s *pebbleStore) writeTable(path string, ops []Op, ents []ingestEntry) error {
	f, err := s.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), s.opts.MakeWriterOptions(0, s.db.TableFormat()))
	for i, e := range ents {
		op := ops[e.i]
		if i+1 < len(ents) && e.p0 == ents[i+1].p0 && e.p1 == ents[i+1].p1 && bytes.Equal(op.Key, ops[ents[i+1].i].Key) {
			continue // a later op of the same key wins
		}
		if op.Delete {
			err = w.Delete(op.Key)
		} else {
			err = w.Set(op.Key, op.Value)
		}
		if err != nil {
			_ = w.Close()
			return err
		}
	}
	return w.Close()
}

// removeIngestFiles deletes the tables of ingests a crash interrupted.
func removeIngestFiles(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return fmt.Errorf("kv: list %s: %w", dir, err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, ingestPrefix) && strings.HasSuffix(name, ".sst") {
			if err := fs.Remove(fs.PathJoin(dir, name)); err != nil {
				return fmt.Errorf("kv: remove %s: %w", name, err)
			}
		}
	}
	return nil
}
