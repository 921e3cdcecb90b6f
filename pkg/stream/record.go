package stream

import "time"

// Record is one key-value pair flowing through a topology, with its event
// timestamp and headers.
type Record[K, V any] struct {
	// Key is the record key (the zero K for a null key).
	Key K
	// Value is the record value.
	Value V
	// Timestamp is the event time: the Kafka record timestamp, or what the
	// source's timestamp extractor or SetTimestamp made of it.
	Timestamp time.Time
	// Headers are the Kafka record headers, in order.
	Headers []Header
}

// Header is a Kafka record header.
type Header struct {
	// Key is the header name; Kafka allows repeated names.
	Key string
	// Value is the header value (nil for a null value).
	Value []byte
}

// KeyValue is a key and a value, as returned by store iterators and test drivers.
type KeyValue[K, V any] struct {
	// Key is the entry's key.
	Key K
	// Value is the entry's value.
	Value V
}

// RecordMetadata names the Kafka position of the input record being processed.
type RecordMetadata struct {
	// Topic is the topic the record was read from (for a repartition topic,
	// the name with the application id prefix).
	Topic string
	// Partition is the record's partition.
	Partition int32
	// Offset is the record's offset in its partition.
	Offset int64
}

// TaskID names a task: one partition of one sub-topology. A task owns that
// partition of every source topic of the sub-topology and the same partition of
// every changelog of its stores.
type TaskID struct {
	// Subtopology is the sub-topology's number, as Describe prints it.
	Subtopology int
	// Partition is the partition of the sub-topology's topics the task owns.
	Partition int32
}
