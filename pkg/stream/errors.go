package stream

import (
	"errors"
	"fmt"
)

var (
	// ErrStoreNotFound is returned when a processor or a query asks for a store
	// the topology does not have (or that the processor did not declare).
	ErrStoreNotFound = errors.New("stream: store not found")
	// ErrStoreClosed is returned by a store used after its task was closed.
	ErrStoreClosed = errors.New("stream: store closed")
	// ErrNotLocal is returned by an interactive query for a key whose partition
	// is not owned by this instance.
	ErrNotLocal = errors.New("stream: key not hosted by this instance")
	// ErrInvalidTopology is wrapped by errors about a topology that cannot run.
	ErrInvalidTopology = errors.New("stream: invalid topology")
	// ErrClosed is returned by Run when the App was already run.
	ErrClosed = errors.New("stream: app already ran")

	errNilTopology = fmt.Errorf("%w: the topology is nil (make it with Builder.Build)", ErrInvalidTopology)
)

// SerdeError reports a value that a Serde could not encode or decode.
type SerdeError struct {
	// Format names the serde ("json", "int64", ...).
	Format string
	// Err is the encoding or decoding error.
	Err error
}

// Error describes the failure.
func (e *SerdeError) Error() string { return fmt.Sprintf("stream: %s serde: %v", e.Format, e.Err) }

// Unwrap returns the underlying error.
func (e *SerdeError) Unwrap() error { return e.Err }

// ProcessError reports a failure while processing one input record, or a
// panic in user code (Err then reads "panic: ..."); it names the record's
// position so it can be found in Kafka. In a punctuation, Topic is
// "punctuation" and Offset -1.
type ProcessError struct {
	// Node is the processor node that failed ("source" for an undecodable
	// record under FailOnBadRecord).
	Node string
	// Topic is the input record's topic, or "punctuation".
	Topic string
	// Partition is the input record's partition (the task's, in a
	// punctuation).
	Partition int32
	// Offset is the input record's offset, or -1 in a punctuation.
	Offset int64
	// Err is what the processor returned, or the recovered panic.
	Err error
}

// Error describes the failure with the node and the record's position.
func (e *ProcessError) Error() string {
	return fmt.Sprintf("stream: node %s: record %s/%d@%d: %v", e.Node, e.Topic, e.Partition, e.Offset, e.Err)
}

// Unwrap returns the underlying error.
func (e *ProcessError) Unwrap() error { return e.Err }
