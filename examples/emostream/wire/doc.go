// Package wire defines what EmoStream's components say to each other: the
// emoji object clients POST to the ingest API, the record value on the input
// topic (topic1), the window result on the output topic (topic2), and the
// rules that decide whether an emoji object is acceptable.
//
// Everything that crosses a process boundary is defined here exactly once, so
// the API, the aggregator, the dashboard and the load client cannot drift
// apart.
//
// # Requests
//
// [ParseRequest] turns one JSON emoji object from an HTTP client into an
// [Event], applying the contract's rules: user_id is 1–128 bytes of valid
// UTF-8, emoji_type is exactly one emoji grapheme cluster (see [ValidEmoji]),
// and timestamp is an RFC 3339 string or integer Unix epoch milliseconds, at
// most [MaxFutureSkew] ahead of the server's clock, or absent (the server's
// receive time is used). A rejected field is reported as a *[FieldError].
//
// # Input records (topic1)
//
// An [Event] is encoded with [Event.Marshal] as
//
//	{"user_id":"...","emoji_type":"...","timestamp":<epoch ms>}
//
// and keyed by its emoji_type. [DecodeEvent] is the strict reader the
// aggregator uses: a record it rejects comes back as a *[DecodeError] whose
// Reason is short enough to go into a dead-letter record's "error" header.
//
// # Window results (topic2)
//
// A [Result] is one (window, emoji_type) count:
//
//	{"window_start":<ms>,"window_end":<ms>,"emoji_type":"...","count":<n>,"bursts":<n>}
//
// with bursts computed by [Bursts]. [DecodeResult] reads it back.
//
// # Extra aggregations' rows (topic2-<name>)
//
// The extra aggregations (package aggregation) all write one shape, a
// [Row]:
//
//	{"aggregation":"top3","window_start":<ms>,"window_end":<ms>,"label":"🔥","value":42,"rank":1}
//
// so the dashboard can show any of them. [DecodeRow] reads it back and
// [RowSerde] is its serde.
package wire
