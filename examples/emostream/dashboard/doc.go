// Package dashboard serves EmoStream's live page: window results from the
// output topic (topic2), pushed to browsers as they arrive.
//
// # One consumer, many viewers
//
// The server reads topic2 once, with a plain partition consumer per
// partition, and fans every result out to the connected viewers. Each
// viewer has a small buffer; a viewer that falls behind by more than that is
// disconnected rather than allowed to slow the others or grow memory (the
// browser's EventSource reconnects by itself and reloads the recent
// history). The consumer starts at the newest offsets, since a live page
// has no use for old results, but first reads back a bounded number of
// recent records per partition to fill the history that /api/windows
// serves and that a freshly opened page draws its chart from.
//
// # Endpoints
//
//   - GET / — the page: floating emoji bursts, a chart of counts per emoji
//     over the last 60 windows, the top emojis of the last minute, the
//     ingest rate and the end-to-end latency. Plain HTML, CSS, SVG and
//     JavaScript embedded in the binary; nothing is loaded from elsewhere.
//   - GET /events — Server-Sent Events: each result as "event: window" with
//     the topic2 JSON value as data.
//   - GET /api/windows?limit=N — the latest results, newest window first
//     (default 100).
//
// # Latency
//
// A window's result can exist only once the window has closed, at
// window_end + grace. The page and the metric
// emostream_dashboard_result_latency_seconds report how long after that
// moment a result reached the dashboard: the aggregator's delay plus
// Kafka's.
package dashboard
