// Package dashboard serves EmoStream's live page: window results from the
// output topic (topic2), pushed to browsers as they arrive.
//
// # One consumer, many viewers
//
// The server reads topic2 once, with a plain partition consumer per
// partition, and fans every result out to the connected viewers. Each
// result is encoded once; the encoded events sit in one ring that all
// viewers read from, each at its own position, so a broadcast costs the
// same for 10 viewers as for 10,000 and never waits for one. A viewer,
// woken once per clump of results, writes everything new with one write and
// one flush. A viewer that falls more than Config.ViewerBuffer events behind
// is disconnected (emostream_dashboard_viewers_dropped_total) rather than
// allowed to slow the others; the page reconnects and reloads the recent
// history. At most Config.MaxViewers (--max-viewers, default 10,000)
// streams are open at once; more are answered 503 {"error":"too many
// viewers"} with Retry-After (emostream_dashboard_viewers_refused_total).
//
// The consumer starts at the newest offsets, since a live page has no use
// for old results, but first reads back a bounded number of recent records
// per partition to fill the history that /api/windows serves and that a
// freshly opened page draws its chart from.
//
// # Kafka failures
//
// Every failure to set the consumer up is retried with backoff (250 ms
// doubling to 10 s), and /healthz answers 503 with the reason meanwhile; a
// probe asks Kafka every second while it runs, so a broker that goes away
// shows there too, and 200 comes back when it answers again. When a
// partition's next offset is no longer in the log, because an embedded
// broker restarted without --data-dir (its logs start again at 0) or
// retention deleted records never read, the consumer resets that partition
// to max(oldest, end − Config.Backfill), as at start-up, logs it and counts
// it in emostream_dashboard_offset_resets_total; the results there go to
// the viewers (the page and the history skip those they have). A log whose end
// offset went backwards is treated the same way.
//
// # The page
//
// The page reads /events with fetch rather than EventSource, which gives up
// for good after a 503 and hides the status. Any refusal, unreachable
// server or dropped stream is retried after a delay that starts at 1 s and
// doubles up to 30 s, is at least the server's Retry-After, and has up to
// 50 % jitter; the status badge says what is happening ("too many viewers,
// retrying in 6 s…", "connection lost, reconnecting in 2 s…").
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
