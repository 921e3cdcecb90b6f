// Package load is EmoStream's load client: N concurrent HTTP clients that
// POST random emojis to the ingest API at a target rate for a duration,
// printing a live progress line and a final summary.
//
// The rate is counted in emojis per second across all clients, so changing
// the batch size changes the number of requests, not the load on the
// pipeline. Requests are paced open-loop by a central clock: when every
// client is busy, the slot is skipped and reported as "behind" rather than
// queued, so a slow server shows up as a lower achieved rate and skipped
// slots instead of hiding behind ever older requests. Latency is measured
// from sending a request to reading its answer.
//
// The emojis come from a fixed list with skin tones, ZWJ sequences, flags
// and keycaps, drawn with a skewed distribution whose favourite changes
// every few seconds, so the dashboard has trends to show.
//
// Requests to a plain-HTTP target go through a minimal HTTP/1.1 client of
// the package's own: each client writes a request with one system call on
// its keep-alive connection and reads the answer in the same goroutine, so
// that the load client, which usually shares the machine with the server it
// loads, costs as little CPU per request as possible (about a third of what
// net/http's client costs). An https target, or a Config.HTTPClient, uses
// net/http.
//
// [Client.Run] runs the load; the `load` subcommand and `run --load-clients`
// both use it.
package load
