package stream

import "time"

// Record is one key-value pair flowing through a topology, with its event
// timestamp and headers.
type Record[K, V any] struct {
	Key       K
	Value     V
	Timestamp time.Time
	Headers   []Header
}

// Header is a Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// KeyValue is a key and a value, as returned by store iterators and test drivers.
type KeyValue[K, V any] struct {
	Key   K
	Value V
}

// RecordMetadata names the Kafka position of the input record being processed.
type RecordMetadata struct {
	Topic     string
	Partition int32
	Offset    int64
}

// TaskID names a task: one partition of one sub-topology. A task owns that
// partition of every source topic of the sub-topology and the same partition of
// every changelog of its stores.
type TaskID struct {
	Subtopology int
	Partition   int32
}
