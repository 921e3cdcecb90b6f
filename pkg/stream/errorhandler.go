package stream

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// DeserializationAction is what happens to an input record whose key or value
// cannot be decoded.
type DeserializationAction int

const (
	// FailOnBadRecord stops the application with the error (the default, as in
	// Kafka Streams: nothing is skipped unless you say so).
	FailOnBadRecord DeserializationAction = iota
	// LogAndSkip logs the record's position and goes on.
	LogAndSkip
	// SendToDeadLetter writes the raw record to the dead-letter topic named by
	// DeadLetterTopic, with headers error, source_topic, source_partition and
	// source_offset, and goes on.
	SendToDeadLetter
)

// deadLetter builds the record sent to a dead-letter topic for a bad input.
func deadLetter(topic string, r *inRecord, reason string, now time.Time) *outRecord {
	hs := append(append([]Header(nil), r.headers...),
		Header{Key: "error", Value: []byte(reason)},
		Header{Key: "source_topic", Value: []byte(r.topic)},
		Header{Key: "source_partition", Value: []byte(strconv.Itoa(int(r.partition)))},
		Header{Key: "source_offset", Value: []byte(strconv.FormatInt(r.offset, 10))},
		Header{Key: "source_timestamp", Value: []byte(strconv.FormatInt(r.timestamp.UnixMilli(), 10))},
	)
	// Stamped with the time it was dead-lettered, so the dead-letter topic's
	// retention counts from then: with the original timestamp, a record
	// months late would be deleted at the broker's next retention check.
	return &outRecord{topic: topic, partition: -1, key: r.key, value: r.value, timestamp: now, headers: hs}
}

// handleBadRecord applies the configured action; shared by the Kafka runtime
// and the local runner.
func handleBadRecord(env taskEnv, action DeserializationAction, dlq string, t *task, r *inRecord, err error) error {
	m := env.metrics()
	switch action {
	case LogAndSkip:
		t.logger.Warn("skipping undecodable record", slog.String("topic", r.topic), slog.Int("partition", int(r.partition)), slog.Int64("offset", r.offset), slog.Any("err", err))
		if m != nil {
			m.badRecords.WithLabelValues("skipped").Inc()
		}
		return nil
	case SendToDeadLetter:
		if m != nil {
			m.badRecords.WithLabelValues("dead_letter").Inc()
		}
		return env.send(t, deadLetter(dlq, r, err.Error(), env.now()))
	default:
		if m != nil {
			m.badRecords.WithLabelValues("failed").Inc()
		}
		return &ProcessError{Node: "source", Topic: r.topic, Partition: r.partition, Offset: r.offset, Err: err}
	}
}

// DeadLetter writes the input record being processed — its original key,
// value and headers, as read from Kafka — to topic, with the headers error
// (reason), source_topic, source_partition, source_offset and
// source_timestamp (the original record timestamp, Unix ms), and counts it in
// stream_dead_letters_total{reason}. The dead-letter record is timestamped
// with the wall-clock time it was written, so the topic's retention counts
// from then (a record months late would otherwise be deleted at once). Call it from a
// Processor's Process with the ProcessorContext it was given; the write has
// the same at-least-once guarantee as any sink.
func DeadLetter(ctx interface{ TaskID() TaskID }, topic, reason string) error {
	d, ok := ctx.(interface {
		deadLetter(topic, reason string) error
	})
	if !ok {
		return fmt.Errorf("stream: DeadLetter needs the ProcessorContext given to Process, got %T", ctx)
	}
	return d.deadLetter(topic, reason)
}

// RecordDropped counts an input record a processor chose to drop (for
// example a late record with dropping chosen explicitly) in
// stream_dropped_records_total{reason}.
func RecordDropped(ctx interface{ TaskID() TaskID }, reason string) {
	if d, ok := ctx.(interface{ dropped(reason string) }); ok {
		d.dropped(reason)
	}
}

// CaughtUp reports whether the task of ctx has processed every record its
// input partitions held at the last fetch from Kafka. Wall-clock decisions
// (such as closing a window because the wall clock passed its end) should
// wait for it: while a task works through a backlog — after a restart or a
// rebalance — records already in Kafka must not be judged by the wall clock.
//
// A record being processed that arrived while the task was consuming counts
// as processed, so the last record of the live tail (the first record of an
// empty partition, say) sees true; the records of the backlog a task starts
// with see false, up to the last one. A partition whose end was reached once
// stays caught up while only a few records lie ahead (a burst arriving at
// the tail), and the first record of an empty partition counts as the tail
// also when it was written while a new application joined its group. Always
// true in a LocalRunner (streamtest).
func CaughtUp(ctx interface{ TaskID() TaskID }) bool {
	if c, ok := ctx.(interface{ isCaughtUp() bool }); ok {
		return c.isCaughtUp()
	}
	return true
}

// ExactlyOnceEnabled reports whether the task of ctx runs with Kafka
// transactions ([ExactlyOnce]): its outputs and state changes are committed
// atomically, so after a restart nothing it emitted before the last commit
// is missing and nothing after it is visible. Processors that re-emit
// results on restart to make up for lost outputs need not do so then.
func ExactlyOnceEnabled(ctx interface{ TaskID() TaskID }) bool {
	if c, ok := ctx.(interface{ isExactlyOnce() bool }); ok {
		return c.isExactlyOnce()
	}
	return false
}
