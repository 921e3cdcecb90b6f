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
	// restored. Keep ctx if Close or punctuations need it.
	Init(ctx ProcessorContext[KOut, VOut]) error
	// Process handles one record. A returned error stops the application (the
	// record is processed again after a restart).
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
}

// PunctuationType selects the clock that drives a punctuation.
type PunctuationType int

const (
	// StreamTime punctuations fire when the task's stream time (largest record
	// timestamp seen) passes the next due time. They do not fire without input.
	StreamTime PunctuationType = iota
	// WallClockTime punctuations fire on the runtime's clock, with or without input.
	WallClockTime
)

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
