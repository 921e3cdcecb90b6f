// Package aggregation is EmoStream's extension point: an [Aggregation] is a
// windowed computation over the emoji stream that the aggregate process runs
// next to the contract's count (topic2), with the same runtime, restart
// loop, metrics and dead-letter handling, and that writes its results to a
// topic of its own.
//
// # The interface
//
// An aggregation has a [Aggregation.Name] (it selects the aggregation in
// --aggregations and names its output topic, <output topic>-<name>, and its
// stores), a [Aggregation.Title] (the dashboard panel's heading) and a
// [Aggregation.Build] method. Build receives an [Input] — the typed topic1
// stream (Events), the contract's final counts (Counts), the count's windows
// and clocks — adds its processors to the topology and returns a stream of
// [wire.Row]. EmoStream stamps each row with the aggregation's name and
// writes it with [wire.RowSerde]; the dashboard shows every enabled
// aggregation's rows in a generic panel, so a new aggregation needs no
// dashboard code.
//
// # Shipped aggregations
//
//   - [DistinctUsers] ("distinct-users"): the number of distinct user_ids
//     per emoji and window, one row per (window, emoji), keyed by emoji.
//   - [TopK] ("top3" for k = 3): the k emojis with the largest counts of
//     each window, a second aggregation keyed by window over Counts; up to k
//     rows per window, ranked, keyed by the window start.
//
// "count" is the contract's count itself; it always runs.
//
// # Late and bad records
//
// Malformed topic1 records never reach an aggregation: the single topic1
// source sends them to the dead-letter topic once. A late record is late
// for every aggregation of Events (same windows, grace and clocks); the
// count writes it to the dead-letter topic, and [Input.WindowOpts] makes the
// others drop it and count it (stream_dropped_records_total{reason="late"}),
// so the dead-letter topic holds each late emoji exactly once.
//
// # Guarantees
//
// Aggregations of Events inherit the count's: no emoji counted twice after
// a crash, one final result per window, repeated after a crash only with
// identical values (none under exactly-once). An aggregation of Counts, like
// TopK, is final when every count result of its window reached it within
// [Input.CountLag] after window_end + grace; see [TopK] and
// examples/emostream/README.md ("Extra aggregations").
package aggregation
