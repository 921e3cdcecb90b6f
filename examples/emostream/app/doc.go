// Package app is the emostream command: it parses the subcommand, flags and
// EMOSTREAM_* environment variables and wires the components (embedded
// broker, ingest API, aggregator, dashboard, load client) together.
//
// main.go calls [Main]; everything here is testable without a process.
//
// # Subcommands
//
//	run (default)  everything in one process
//	api            the ingest API alone
//	aggregate      the windowed aggregator alone
//	dashboard      the dashboard alone
//	load           the load client
//	broker         the embedded Kafka-protocol broker alone
//
// Every subcommand accepts every flag and uses those it needs, so one set of
// EMOSTREAM_* variables can configure a whole deployment.
//
// # Flags and environment
//
// Each flag can also be set by an environment variable named EMOSTREAM_ and
// the flag's name in upper case with dashes as underscores (--data-dir is
// EMOSTREAM_DATA_DIR). A flag on the command line wins over the variable.
//
// # Shutdown
//
// On SIGINT or SIGTERM (a cancelled context) the parts stop in an order
// that loses nothing: load clients first, then the HTTP server and the API,
// which answer the requests in flight and flush the producer, then the
// aggregator and the dashboard consumer, and the embedded broker last.
//
// # The aggregator
//
// The windowed aggregator lives in its own package; main.go hands it to
// [Main] as an [AggregatorFunc], so this package does not depend on it.
package app
