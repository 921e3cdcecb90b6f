package stream

import (
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
