// Package window adds event-time windowed aggregation to package stream:
// tumbling and hopping windows aligned to the epoch, session windows, sliding
// windows (Kafka Streams' SlidingWindows), a grace period for
// out-of-order records, two emit strategies, closing windows by the wall
// clock when input is idle, and a dead-letter topic for late records.
//
// # Time
//
// Event time comes from the source's timestamp extractor (the Kafka record
// timestamp by default). Each task's stream time is the largest timestamp it
// has seen. A window [start, end) accepts records until stream time reaches
// end + grace; from then on it is closed and records for it are late.
//
// # Emit strategies
//
// OnWindowUpdate (the default, as in Kafka Streams) forwards the window's value
// after every record. OnWindowClose forwards one final result per window and
// key when the window closes, in (end, key) order. With WallClockClose (on by
// default for OnWindowClose) a window also closes when the wall clock passes
// end + grace, so results arrive on time when input stops; once closed by
// either clock, records for it are late. With it off, stream time alone
// decides, exactly as in Kafka Streams.
//
// # Late records
//
// A record whose windows are all closed is not aggregated. It goes to the
// topic named by LateRecordsTo, unchanged, with headers error=late,
// source_topic, source_partition and source_offset, or is dropped and counted
// if DropLateRecords was chosen. One of the two is required.
//
// # State and guarantees
//
// Window values live in a changelogged key-value store (<name>-store) and an
// index by window end (<name>-index) makes closing cost proportional to the
// windows that are due, not to the number of keys. The close watermark is
// stored too, so a restarted task makes the same late/closed decisions.
// Updates are deduplicated like every store write in package stream: input
// redelivered after a crash is not counted twice. Final results of windows
// closed shortly before a restart are emitted again, with identical values,
// because the runtime cannot know whether they reached Kafka. Windows are
// kept for Retention after their end, then purged.
//
// See docs/windowing.md for diagrams and details.
package window
