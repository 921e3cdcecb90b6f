package stream

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream/internal/kv"
)

// ingestStore is a memory store that takes runs through Ingest, slowly
// enough that the reader hands the next run over while one is written, and
// fails the run numbered failAt (from 1; 0 never).
type ingestStore struct {
	kv.Store
	runs   atomic.Int32
	failAt int32
	slow   chan struct{}
}

func (s *ingestStore) Ingest(ops []kv.Op) error {
	if s.slow != nil {
		<-s.slow
	}
	if s.runs.Add(1) == s.failAt {
		return errors.New("disk full")
	}
	return kv.WriteBatch(s.Store, ops)
}

func restoreRunOf(from, n int, tag string) []kv.Op {
	ops := make([]kv.Op, 0, n)
	for i := from; i < from+n; i++ {
		k := fmt.Appendf(nil, "k%03d", i%50) // later runs overwrite earlier keys
		if i%7 == 0 {
			ops = append(ops, kv.Op{Key: k, Delete: true})
			continue
		}
		ops = append(ops, kv.Op{Key: k, Value: fmt.Appendf(nil, "%s-%d", tag, i)})
	}
	return ops
}

// TestRunWriterKeepsOrder: runs handed to the writer land in the order they
// were read (a later run's write of a key wins), the reader gets a reused
// buffer back, and the offset reached is the last run's.
func TestRunWriterKeepsOrder(t *testing.T) {
	defer SetRestoreRun(restoreRun, 2)()
	st := &ingestStore{Store: kv.NewMemory()}
	model := map[string]string{}
	w := startRunWriter(st)
	next := 0
	for r := range 20 {
		ops := w.buffer()
		ops = append(ops, restoreRunOf(next, 30, fmt.Sprint(r))...)
		for _, op := range ops {
			if op.Delete {
				delete(model, string(op.Key))
			} else {
				model[string(op.Key)] = string(op.Value)
			}
		}
		next += 30
		require.NoError(t, w.write(ops, int64(next)))
	}
	require.NoError(t, w.stop())
	require.NoError(t, w.stop(), "stop twice")
	require.Equal(t, int64(next), w.to)
	require.Equal(t, int32(20), st.runs.Load())
	for i := range 50 {
		k := fmt.Sprintf("k%03d", i)
		v, ok, err := st.Get([]byte(k))
		require.NoError(t, err)
		want, wantOK := model[k]
		require.Equal(t, wantOK, ok, k)
		require.Equal(t, want, string(v), k)
	}
}

// TestRunWriterReportsFailure: a run that fails stops the writing (later
// runs are not applied), the reader learns of it at its next handover and
// at stop, and the offset reached is the last run written before it.
func TestRunWriterReportsFailure(t *testing.T) {
	defer SetRestoreRun(restoreRun, 2)()
	st := &ingestStore{Store: kv.NewMemory(), failAt: 2, slow: make(chan struct{})}
	w := startRunWriter(st)
	require.NoError(t, w.write(restoreRunOf(0, 10, "a"), 10))
	st.slow <- struct{}{} // run 1 written
	require.NoError(t, w.write(restoreRunOf(10, 10, "b"), 20))
	st.slow <- struct{}{} // run 2 fails
	<-w.failed
	require.EqualError(t, w.write(restoreRunOf(20, 10, "c"), 30), "disk full", "the next handover reports it")
	close(st.slow)
	require.EqualError(t, w.stop(), "disk full")
	require.Equal(t, int64(10), w.to, "offset reached: the end of the last run written")
	require.Equal(t, int32(2), st.runs.Load(), "nothing is written after the failed run")
}
