package stream

// State store backends: opening a task's stores (memory or Pebble, with the
// checkpoint of a clean close), restoring them from their changelogs, and
// keeping them across reassignments.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/pkg/stream/internal/kv"
)

type backendKey struct {
	store     string
	partition int32
}

type cachedBackend struct {
	b          kv.Store
	restoredTo int64
}

// storeDir is <StateDir>/<application id>/<store>-<partition>: apps with
// different ids never share a store folder, whatever their StateDir.
func (a *App) storeDir(store string, p int32) string {
	return filepath.Join(a.cfg.stateDir, a.cfg.appID, fmt.Sprintf("%s-%d", store, p))
}

func (a *App) openBackend(t *task, spec *storeSpec, _ string) (kv.Store, int64, error) {
	key := backendKey{spec.name, t.id.Partition}
	a.cacheMu.Lock()
	c, ok := a.cache[key]
	delete(a.cache, key)
	a.cacheMu.Unlock()
	if ok {
		return c.b, c.restoredTo, nil
	}
	if !spec.persistent {
		return kv.NewMemory(), 0, nil
	}
	dir := a.storeDir(spec.name, t.id.Partition)
	b, clean, err := kv.OpenPebble(dir, kv.PebbleLogger(a.cfg.logger.With("application_id", a.cfg.appID, "store", spec.name, "partition", t.id.Partition)))
	if err != nil {
		return nil, 0, err
	}
	var restoredTo int64
	if clean {
		if raw, err := os.ReadFile(dir + ".checkpoint"); err == nil {
			restoredTo, _ = strconv.ParseInt(string(raw), 10, 64)
		}
	}
	return b, restoredTo, nil
}

// releaseBackend keeps a closed task's store for a later reassignment: memory
// stores stay in the cache, persistent ones are closed cleanly with a
// checkpoint. Either way the next owner only reads the changelog's tail.
func (a *App) releaseBackend(c *storeCore) {
	restored := c.restoredTo
	if l := c.lastAcked.Load(); l+1 > restored {
		restored = l + 1
	}
	spec := a.top.stores[c.name]
	if !spec.persistent {
		a.cacheMu.Lock()
		a.cache[backendKey{c.name, c.partition}] = &cachedBackend{b: c.backend, restoredTo: restored}
		a.cacheMu.Unlock()
		return
	}
	dir := a.storeDir(c.name, c.partition)
	_ = os.Remove(dir + ".checkpoint")
	if err := c.backend.Close(); err != nil {
		a.cfg.logger.Warn("closing store", slog.String("store", c.name), slog.Any("err", err))
		return
	}
	_ = os.WriteFile(dir+".checkpoint", []byte(strconv.FormatInt(restored, 10)), 0o644)
}

// dropBackend discards a lost task's store: it may hold writes its
// changelog lacks, so no later task may start from it (a persistent store's
// folder is deleted; the next owner here restores from the changelog).
func (a *App) dropBackend(c *storeCore) {
	if err := c.backend.Close(); err != nil {
		a.cfg.logger.Warn("closing store", slog.String("store", c.name), slog.Any("err", err))
	}
	if a.top.stores[c.name].persistent {
		dir := a.storeDir(c.name, c.partition)
		_ = os.Remove(dir + ".checkpoint")
		if err := os.RemoveAll(dir); err != nil {
			a.cfg.logger.Warn("deleting a dropped store", slog.String("store", c.name), slog.Any("err", err))
		}
	}
}

func (a *App) closeBackends() {
	a.stopStandbys()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	for k, c := range a.cache {
		_ = c.b.Close()
		delete(a.cache, k)
	}
}

// restoreBatch is the most changelog records a restore writes to a store at
// once (see kv.WriteBatch).
const restoreBatch = 1024

// A restore into a store that ingests runs (kv.Ingester: Pebble) collects up
// to restoreRun records or restoreRunBytes of keys and values and hands them
// over at once: sorted into a table instead of inserted one by one into
// Pebble's memtable and flushed again, a run costs less than half the CPU
// (BenchmarkRestoreRun). Shorter runs, as at the end of a restore, are
// written as a batch when under restoreRunMin records. (Variables so tests
// can make runs short.)
var (
	restoreRun      = 128 << 10
	restoreRunBytes = 16 << 20
	restoreRunMin   = 4096
)

// restore brings a store up to date with its changelog partition.
func (a *App) restore(t *task, c *storeCore) error {
	// A shutdown stops a restore at once (the next owner goes on from the
	// store's checkpoint or the changelog's start).
	ctx := a.life.ctx
	getOffset := func(at int64) (int64, error) {
		return await(a.life, ctx, func() (int64, error) { return a.client.GetOffset(c.changelog, c.partition, at) }, nil)
	}
	hwm, err := getOffset(sarama.OffsetNewest)
	if err != nil {
		return err
	}
	oldest, err := getOffset(sarama.OffsetOldest)
	if err != nil {
		return err
	}
	from := c.restoredTo
	if from < oldest {
		from = oldest
	}
	if from >= hwm {
		c.restoredTo = hwm
		return nil
	}
	start := time.Now()
	t.logger.Debug("restoring store", slog.String("store", c.name), slog.Int64("from", from), slog.Int64("to", hwm))
	pc, err := consumeAfterClose(ctx, a.consumer, c.changelog, c.partition, from)
	if err != nil {
		return err
	}
	// The subscription ends in the background: sarama confirms it only
	// after the broker consumer's next fetch round (up to
	// Consumer.MaxWaitTime), time the task's start would wait for.
	defer closeInBackground(pc)
	timeout := time.NewTimer(a.cfg.restoreTimeout)
	defer timeout.Stop()
	// With transactions the changelog ends in commit markers, which a
	// read_committed consumer skips without delivering, so restoredTo may
	// never reach the high watermark. The restore consumer fetches with a
	// short wait (Consumer.MaxWaitTime 100ms); a second of silence at an
	// unchanged high watermark means the tail holds only markers or
	// aborted records — but only once a fetch response has arrived (the
	// consumer's high watermark reads 0 before), or a slow first fetch
	// would end the restore with nothing read.
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	got := false
	n, idleTicks := 0, 0
	var ops []kv.Op
	_, ingest := c.backend.(kv.Ingester)
	limit := restoreBatch
	var w *runWriter
	if ingest {
		limit = restoreRun
		// Runs are written by a goroutine of their own while the next one
		// is read: the consumer's channel drains during a table write, so
		// sarama does not hold this partition's fetches (nor, waiting for
		// it, the other partitions' of the same broker) for the write. The
		// reader waits only when the next run is full before the previous
		// one is written.
		w = startRunWriter(c.backend)
		defer func() {
			w.stop()
			c.restoredTo = max(c.restoredTo, w.to)
		}()
	}
	// ops holds the records read up to offset pending - 1, not written yet;
	// c.restoredTo moves only once they are.
	pending, opBytes := c.restoredTo, 0
	write := func() error {
		if len(ops) == 0 {
			return nil
		}
		if w != nil {
			if err := w.write(ops, pending); err != nil {
				return err
			}
			n += len(ops)
			ops, opBytes = w.buffer(), 0
			return nil
		}
		if err := kv.WriteBatch(c.backend, ops); err != nil {
			return err
		}
		c.restoredTo = pending
		n += len(ops)
		ops, opBytes = ops[:0], 0
		return nil
	}
	for pending < hwm {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream: restoring %s/%d stopped at offset %d of %d: %w", c.changelog, c.partition, c.restoredTo, hwm, ctx.Err())
		case <-idle.C:
			if !a.cfg.exactlyOnce || got || pc.HighWaterMarkOffset() == 0 {
				got = false
				continue
			}
			// Done only when no transaction is open on the partition (its
			// last stable offset has reached the high watermark): an open
			// one — say of an instance that just died — holds back every
			// record after its start until it commits or times out, and
			// the fetches meanwhile return nothing.
			now, err := a.client.GetOffset(c.changelog, c.partition, sarama.OffsetNewest)
			if err != nil || now != hwm {
				hwm = max(hwm, now)
				continue
			}
			// Nothing read at all although offsets lie ahead: give the
			// consumer a few more seconds before believing they are only
			// markers and aborted records.
			if idleTicks++; n+len(ops) == 0 && hwm-from > 1 && idleTicks < 5 {
				continue
			}
			if lso, err := a.lastStableOffset(c.changelog, c.partition); err == nil && lso >= hwm {
				pending = hwm
			}
		case m := <-pc.Messages():
			got = true
			// Take what the consumer has buffered: one lock or one Pebble
			// commit per batch, one table per run.
			ops = append(ops, kv.Op{Key: m.Key, Value: m.Value, Delete: m.Value == nil})
			opBytes += len(m.Key) + len(m.Value)
			pending = m.Offset + 1
		more:
			for len(ops) < limit && opBytes < restoreRunBytes && pending < hwm {
				select {
				case m := <-pc.Messages():
					ops = append(ops, kv.Op{Key: m.Key, Value: m.Value, Delete: m.Value == nil})
					opBytes += len(m.Key) + len(m.Value)
					pending = m.Offset + 1
				default:
					break more
				}
			}
			if !ingest || len(ops) >= limit || opBytes >= restoreRunBytes || pending >= hwm {
				if err := write(); err != nil {
					return err
				}
			}
		case e := <-pc.Errors():
			return e
		case <-timeout.C:
			return fmt.Errorf("stream: restoring %s/%d timed out at offset %d of %d", c.changelog, c.partition, c.restoredTo, hwm)
		}
	}
	if err := write(); err != nil {
		return err
	}
	if w != nil {
		if err := w.stop(); err != nil {
			return err
		}
	}
	c.restoredTo = max(c.restoredTo, pending)
	a.met.restored.WithLabelValues(c.name).Add(float64(n))
	t.logger.Info("store restored", slog.String("store", c.name), slog.Int64("from", from), slog.Int("records", n), slog.Duration("took", time.Since(start)))
	return nil
}

// lastStableOffset asks the partition's leader for its last stable offset
// (ListOffsets with read_committed isolation): the first offset of the
// oldest open transaction, or the high watermark when none is open.
func (a *App) lastStableOffset(topic string, partition int32) (int64, error) {
	broker, err := a.client.Leader(topic, partition)
	if err != nil {
		return 0, err
	}
	req := sarama.NewOffsetRequest(a.client.Config().Version)
	req.IsolationLevel = sarama.ReadCommitted
	req.AddBlock(topic, partition, sarama.OffsetNewest, 1)
	resp, err := broker.GetAvailableOffsets(req)
	if err != nil {
		return 0, err
	}
	block := resp.GetBlock(topic, partition)
	if block == nil {
		return 0, fmt.Errorf("stream: no offset for %s/%d", topic, partition)
	}
	if block.Err != sarama.ErrNoError {
		return 0, block.Err
	}
	return block.Offset, nil
}

// closeInBackground closes pc without waiting for sarama to confirm it,
// draining what it still delivers (AsyncClose requires that).
func closeInBackground(pc sarama.PartitionConsumer) {
	pc.AsyncClose()
	go func() {
		for range pc.Messages() {
		}
	}()
	go func() {
		for range pc.Errors() {
		}
	}()
}

// consumeAfterClose is ConsumePartition, waiting (up to a second) while an
// earlier consumer of the partition that closeInBackground closed has not
// let go of it yet.
func consumeAfterClose(ctx context.Context, c sarama.Consumer, topic string, partition int32, from int64) (sarama.PartitionConsumer, error) {
	deadline := time.Now().Add(time.Second)
	for {
		pc, err := c.ConsumePartition(topic, partition, from)
		var cerr sarama.ConfigurationError
		if err == nil || !errors.As(err, &cerr) || !strings.Contains(string(cerr), "already being consumed") || time.Now().After(deadline) {
			return pc, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runWriter writes a restore's runs to a store in order, one at a time, in a
// goroutine of its own: a run is handed over (write) and the reader goes on
// collecting the next while the table is built.
type runWriter struct {
	runs   chan restoreRunOps
	free   chan []kv.Op
	failed chan struct{} // closed once err is set
	done   chan struct{}
	// Set by the goroutine; read only after failed or done is closed.
	err error
	to  int64 // the next changelog offset not written yet (0: none)
	// stopped: runs is closed (the reader's own field).
	stopped bool
}

// restoreRunOps is one run handed to a runWriter.
type restoreRunOps struct {
	ops []kv.Op
	to  int64 // the next offset after the run
}

func startRunWriter(b kv.Store) *runWriter {
	w := &runWriter{runs: make(chan restoreRunOps), free: make(chan []kv.Op, 1), failed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for r := range w.runs {
			if w.err != nil {
				continue // drain: the reader learns of the error at its next write
			}
			var err error
			if len(r.ops) >= restoreRunMin {
				err = kv.Ingest(b, r.ops)
			} else {
				err = kv.WriteBatch(b, r.ops)
			}
			if err != nil {
				w.err = err
				close(w.failed)
				continue
			}
			w.to = r.to
			clear(r.ops) // the run's keys and values may be collected
			select {
			case w.free <- r.ops[:0]:
			default:
			}
		}
	}()
	return w
}

// write hands ops (the records before offset to) over; it waits while the
// previous run is still being written, and returns the error of an earlier
// run that failed instead.
func (w *runWriter) write(ops []kv.Op, to int64) error {
	select {
	case <-w.failed:
		return w.err
	default:
	}
	select {
	case w.runs <- restoreRunOps{ops, to}:
		return nil
	case <-w.failed:
		return w.err
	}
}

// buffer returns an empty slice for the next run, reusing a written one's.
func (w *runWriter) buffer() []kv.Op {
	select {
	case b := <-w.free:
		return b
	default:
		return nil
	}
}

// stop waits until every run handed over is written and returns the first
// error. It may be called more than once.
func (w *runWriter) stop() error {
	if !w.stopped {
		w.stopped = true
		close(w.runs)
	}
	<-w.done
	return w.err
}
