// Package stream builds and runs stream-processing applications over Apache
// Kafka in the style of Kafka Streams, in Go, with types.
//
// # Topologies
//
// A Builder collects sources (topics read with a key and a value Serde),
// operations and sinks. Operations that keep types are methods of Stream
// (Filter, Peek, Branch, Merge, To); those that change a type are functions
// (Map, MapValues, FlatMap, SelectKey, GroupByKey, GroupBy, Count, Aggregate,
// Reduce), because Go methods cannot have type parameters. Build returns an
// immutable Topology; Describe prints it as Kafka Streams does and
// DescribeMermaid as a diagram.
//
//	b := stream.NewBuilder()
//	src := stream.Source(b, "words", stream.String(), stream.String())
//	counts := stream.Count(stream.GroupBy(src, func(_, w string) string { return w },
//		stream.Grouped[string, string]{KeySerde: stream.String(), ValueSerde: stream.String()}),
//		stream.Materialized[string, int64]{StoreName: "counts"})
//	counts.ToStream().To("word-counts", stream.String(), stream.Int64())
//
// # Options
//
// Settings come in two forms. What configures a whole App, LocalRunner or
// View, a source, a store or (in package window) a windowed aggregation is
// an option: a value of an Opt-like interface made by a function of the
// package (Brokers, ApplicationID, CommitInterval, WithTimestampExtractor,
// Persistent, window.Emit...), passed as trailing arguments, as in
// franz-go. Per-operation configuration that carries serdes of the
// operation's type parameters is a struct named as in Kafka Streams
// (Grouped, Materialized), whose zero fields take defaults: Go cannot infer
// a type parameter from an option constructor's result, so options would
// have to be written with explicit type arguments.
//
// # Processors
//
// Everything in a topology is a Processor (Init, Process, Close); the DSL is
// built from them and Process attaches your own. A ProcessorContext forwards
// records to children, opens the state stores the processor declared, and
// schedules punctuations on stream time or on the wall clock.
//
// # Sub-topologies, tasks and partitions
//
// Nodes connected directly form a sub-topology; a grouping after a key change
// cuts the graph with a repartition topic (<application id>-<name>-repartition)
// so every key lands in one place. A task is one partition of one
// sub-topology: it owns that partition of each source topic and of each
// store's changelog. App.Run joins a consumer group named by the application
// id and runs the tasks assigned to it; more instances share the tasks.
//
// # State
//
// KeyValueStore keeps state in memory by default (Persistent() puts it in
// pebble). Every write also goes to a compacted changelog topic
// (<application id>-<store>-changelog), from which a task restores its stores
// when it is assigned. Stored values remember the input position that last
// changed them, so an input record redelivered after a crash is not applied
// twice: counts never double count. QueryStore queries local stores while the
// application runs; View follows a changelog (with goka) from any process.
//
// # Guarantees
//
// No input record is lost: offsets are committed only after Kafka acknowledged
// every record (output and changelog) the input produced. State is updated
// exactly once per input record. Output topics are at-least-once: after a
// crash a result may be written again, with the same or a newer value. See
// docs/design.md for the details and the limits.
//
// # Security
//
// WithSecurity secures every Kafka connection an App opens with TLS (see
// TLSFiles to load PEM files) and SASL (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512); Security.Apply does the same for a sarama configuration
// of your own. A Security prints and logs without its password.
//
// # Testing
//
// Package streamtest runs a topology in memory with a controlled clock;
// package kafkatest and package embedded give integration tests a broker.
package stream
