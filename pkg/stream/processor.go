package stream

import (
	"log/slog"
	"time"
)

// Processor is a node of a topology that receives records one at a time and may
// forward records to its children, read and write state stores, and schedule
// punctuations. The DSL is made of Processors; users write their own for what the
// DSL does not offer and attach them with Process.
//
// A Processor instance belongs to one task and is never called concurrently.
type Processor[KIn, VIn, KOut, VOut any] interface {
	// Init is called once before the first record, after the task's stores were
	// restored. Keep ctx if Close or punctuations need it. There is no
	// record to forward yet: Forward or ForwardTo in Init makes the task
	// fail to start with an error naming the node.
	Init(ctx ProcessorContext[KOut, VOut]) error
	// Process handles one record. A returned error stops the application (the
	// record is processed again after a restart). A panic is recovered and
	// treated as a returned error (a ProcessError naming the node and the
	// record's position), here, in Init, Close and punctuations.
	Process(ctx ProcessorContext[KOut, VOut], rec Record[KIn, VIn]) error
	// Close releases what Init acquired. Stores are closed by the runtime.
	Close() error
}

// ProcessorContext is a Processor's view of its task.
type ProcessorContext[K, V any] interface {
	// Forward sends rec to every child of this node.
	Forward(rec Record[K, V])
	// ForwardTo sends rec to the named child only.
	ForwardTo(child string, rec Record[K, V])
	// Store returns a state store the processor declared when it was added to
	// the topology. Use GetKeyValueStore for a typed store.
	Store(name string) (StateStore, error)
	// Schedule calls fn every interval of stream time or of wall-clock time.
	Schedule(interval time.Duration, typ PunctuationType, fn Punctuator) Cancellable
	// TaskID names the task this processor runs in.
	TaskID() TaskID
	// RecordMetadata is the Kafka position of the input record being processed;
	// ok is false inside a punctuation.
	RecordMetadata() (md RecordMetadata, ok bool)
	// StreamTime is the largest record timestamp the task has seen.
	StreamTime() time.Time
	// WallClockTime is the current time of the runtime's clock (controlled by
	// streamtest in tests).
	WallClockTime() time.Time
	// ApplicationID is the application's id (its consumer group).
	ApplicationID() string
	// Logger is the application's logger with the task's attributes.
	Logger() *slog.Logger

	// DeadLetter writes the input record being processed — its original
	// key, value and headers, as read from Kafka — to topic, with the
	// headers error (reason), source_topic, source_partition, source_offset
	// and source_timestamp (the original record timestamp, Unix ms), and
	// counts it in stream_dead_letters_total{reason}. The dead-letter record
	// is timestamped with the wall-clock time it was written, so the
	// topic's retention counts from then (a record months late would
	// otherwise be deleted at once). The write has the same guarantee as
	// any sink. Outside of Process (in Init or a punctuation) it returns an
	// error.
	DeadLetter(topic, reason string) error
	// RecordDropped counts an input record the processor chose to drop (for
	// example a late record, with dropping chosen explicitly) in
	// stream_dropped_records_total{reason}.
	RecordDropped(reason string)
	// CaughtUp reports whether the task has processed every record its
	// input partitions held at the last fetch from Kafka. Wall-clock
	// decisions (such as closing a window because the wall clock passed its
	// end) should wait for it: while a task works through a backlog — after
	// a restart or a rebalance — records already in Kafka must not be
	// judged by the wall clock.
	//
	// A record being processed that arrived while the task was consuming
	// counts as processed, so the last record of the live tail (the first
	// record of an empty partition, say) sees true; the records of the
	// backlog a task starts with see false, up to the last one. A partition
	// whose end was reached once stays caught up while only a few records
	// lie ahead (a burst arriving at the tail), and the first record of an
	// empty partition counts as the tail also when it was written while a
	// new application joined its group. Always true in a LocalRunner
	// (streamtest).
	CaughtUp() bool
	// InputCompleteAt returns the latest wall-clock time at which the task
	// had processed everything its input partitions held: the current
	// wall-clock time while the task is caught up ([ProcessorContext.CaughtUp]);
	// while it works through a backlog — after a restart, a rebalance or a
	// failover — the time its last commit recorded, or the application's
	// start for a partition whose commits record none (a new application).
	//
	// Wall-clock decisions use it instead of the clock: a window that was
	// closed by the wall clock at that time was closed before any record of
	// the backlog could have been written on time, so such records are late
	// whether they come in a backlog or not, while a window that closed
	// during the backlog is left to stream time.
	InputCompleteAt() time.Time
	// ExactlyOnceEnabled reports whether the task runs with Kafka
	// transactions ([ExactlyOnce]): its outputs and state changes are
	// committed atomically, so after a restart nothing it emitted before the
	// last commit is missing and nothing after it is visible. Processors
	// that re-emit results on restart to make up for lost outputs need not
	// do so then.
	ExactlyOnceEnabled() bool
	// CommitEpoch returns the task's commit epoch and marks it as used:
	// everything the task's processors forward and write to stores while it
	// is current is covered by the next successful commit of the task,
	// which records this epoch in the committed offsets' metadata (see
	// CommittedEpoch). Epochs start at 1 and grow by one with each commit
	// that follows a use (or a change of stream time). Call it while
	// processing a record, in a punctuation or in Init.
	CommitEpoch() uint64
	// CommittedEpoch returns the last commit epoch that a successful commit
	// of the task covered, 0 if none did. When the task is created (at
	// start, after a rebalance, on a new owner) it is read from the
	// committed offset metadata of the task's source partitions (the
	// smallest over them), so in Init it tells which epochs' work may not
	// have reached Kafka: those after it. The task's first CommitEpoch is
	// CommittedEpoch+1.
	CommittedEpoch() uint64
	// FlushStores makes the task's state durable now, ahead of its next
	// commit: it sends every store's held-back changelog writes, store by
	// store in declaration order, and waits until Kafka acknowledged them
	// all. After it returns, a crash restores every store with at least the
	// writes made so far, while the input since the last commit is
	// processed again. A processor calls it before an effect (a forward, a
	// dead letter) that follows from a decision a replay could not make
	// again the same way — one taken on the wall clock: it records the
	// decision in a store, calls FlushStores, then acts (pkg/window does so
	// for windows the wall clock closes). Before it returns it also
	// confirms, with a heartbeat to the group coordinator, that this
	// instance still owns the task, so no other instance can have restored
	// the stores without that state (a stalled instance the group removed
	// must not act). Under [ExactlyOnce] it does nothing (state and outputs
	// commit together, and a removed instance is fenced). An error means
	// the writes were not acknowledged in time (the application is
	// failing) or the task belongs to another instance now (it is dropped
	// and processed there); the processor should return it without acting.
	FlushStores() error
}

// PunctuationType selects the clock that drives a punctuation.
type PunctuationType int

const (
	// StreamTime punctuations fire when the task's stream time (largest record
	// timestamp seen) passes the next due time. They do not fire without input.
	StreamTime PunctuationType = iota
	// WallClockTime punctuations fire on the runtime's clock, with or without
	// input, and once more, off their schedule, before a graceful hand-over
	// of the task (a revocation or the shutdown) commits for the last time,
	// so that work the wall clock made due is done by the current owner.
	WallClockTime
)

// String names the clock: "stream-time" or "wall-clock".
func (t PunctuationType) String() string {
	if t == WallClockTime {
		return "wall-clock"
	}
	return "stream-time"
}

// Punctuator is a scheduled callback; ts is the stream time or wall-clock time
// that triggered it.
type Punctuator func(ts time.Time) error

// Cancellable cancels a scheduled punctuation.
type Cancellable interface {
	// Cancel stops the punctuation; it does not fire again.
	Cancel()
}

// ProcessorFunc adapts a function to a stateless Processor.
type ProcessorFunc[KIn, VIn, KOut, VOut any] func(ctx ProcessorContext[KOut, VOut], rec Record[KIn, VIn]) error

// Init does nothing.
func (f ProcessorFunc[KIn, VIn, KOut, VOut]) Init(ProcessorContext[KOut, VOut]) error { return nil }

// Process calls f.
func (f ProcessorFunc[KIn, VIn, KOut, VOut]) Process(ctx ProcessorContext[KOut, VOut], rec Record[KIn, VIn]) error {
	return f(ctx, rec)
}

// Close does nothing.
func (f ProcessorFunc[KIn, VIn, KOut, VOut]) Close() error { return nil }
