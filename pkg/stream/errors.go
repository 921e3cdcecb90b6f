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
	Format string
	Err    error
}

func (e *SerdeError) Error() string { return fmt.Sprintf("stream: %s serde: %v", e.Format, e.Err) }

// Unwrap returns the underlying error.
func (e *SerdeError) Unwrap() error { return e.Err }

// ProcessError reports a failure while processing one input record, or a
// panic in user code (Err then reads "panic: ..."); it names the record's
// position so it can be found in Kafka. In a punctuation, Topic is
// "punctuation" and Offset -1.
type ProcessError struct {
	Node      string
	Topic     string
	Partition int32
	Offset    int64
	Err       error
}

func (e *ProcessError) Error() string {
	return fmt.Sprintf("stream: node %s: record %s/%d@%d: %v", e.Node, e.Topic, e.Partition, e.Offset, e.Err)
}

// Unwrap returns the underlying error.
func (e *ProcessError) Unwrap() error { return e.Err }
