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
// after every record. OnWindowClose (Kafka Streams' emitStrategy(onWindowClose))
// forwards one final result per window and key when the window closes, in
// (end, key) order. UntilWindowCloses is Kafka Streams'
// suppress(untilWindowCloses), which differs for session and sliding windows.
// With WallClockClose (on by default for the emit-final strategies) a window
// also closes when the wall clock passes end + grace, so results arrive on
// time when input stops; once closed by either clock, records for it are
// late. With it off, stream time alone decides, exactly as in Kafka Streams.
//
// Every result is timestamped with the largest timestamp of the records in
// its window (for sessions: the session's end), as in Kafka Streams.
//
// # Late records
//
// A record aggregated into no window, because every window holding it is
// closed, is late. It goes to the topic named by LateRecordsTo, unchanged,
// with headers error=late, source_topic, source_partition and source_offset,
// or is dropped and counted if DropLateRecords was chosen. One of the two is
// required: no record is dropped silently. Records with a negative timestamp
// belong to no window and are handled the same way (error=negative_timestamp).
//
// # State and guarantees
//
// Window values live in a changelogged key-value store (<name>-store). The
// open windows, in memory and ordered by end, make closing cost proportional
// to the windows that are due, not to the number of keys. The close
// watermark is stored (in <name>-index), so a restarted task makes the same
// late/closed decisions; for tumbling and hopping windows it and a close mark
// per commit epoch are all <name>-index holds, while session and sliding
// windows keep an entry there per closed window.
// Updates are deduplicated like every store write in package stream: input
// redelivered after a crash is not counted twice. Each final result is
// emitted once, across graceful restarts and rebalances: an emission is
// tied to the task's commit epoch (ProcessorContext.CommitEpoch), and a starting
// task emits again only the results no commit covered — after a crash, with
// identical values and timestamps. Windows are kept for Retention after their
// end, then purged.
//
// See docs/windowing.md for diagrams and details.
package window
