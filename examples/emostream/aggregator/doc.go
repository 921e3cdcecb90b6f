// Package aggregator is EmoStream's windowed aggregator, written with
// pkg/stream and pkg/window as any user of the library would write it: read
// emoji events from the input topic (topic1), count them per emoji in
// tumbling windows aligned to the epoch, emit one final result per window and
// emoji when the window closes (by stream time or by the wall clock), compute
// bursts = ceil(count / scale) and write the results to the output topic
// (topic2). Late and malformed records go to the dead-letter topic.
//
// Config.Aggregations adds extra aggregations (package aggregation) to the
// same topology: they read the same topic1 source and the count's results,
// run with the same runtime options (restart loop, metrics, dead-letter
// handling) and write to topics of their own.
//
// Several aggregator processes with the same application id share the work:
// they form one consumer group over the input topic's partitions.
package aggregator
