// Package streamtest runs a stream topology in memory with deterministic time,
// for unit tests of your own topologies, as Kafka Streams' TopologyTestDriver
// does for Java.
//
// A Driver builds every task of the topology (for Partitions partitions, one by
// default) on in-memory stores. InputTopic pipes typed records in; each Pipe
// returns after the record and everything it caused (repartitioning included)
// has been processed. OutputTopic reads what sinks wrote. AdvanceWallClock
// moves the wall clock and runs due wall-clock punctuations; stream time moves
// with record timestamps, as in production. Stores are inspected with
// KeyValueStore. The driver commits after every Pipe, Redeliver and
// AdvanceWallClock (ProcessorContext.CommitEpoch); Restart restarts every task
// gracefully over the same stores, Redeliver replays input, and
// DroppedRecords and DeadLetters read the processors' counters. No broker
// and no goroutines are involved, so tests are fast and repeatable.
//
// To test what a SIGKILL does, call CommitManually before the first record:
// the driver then commits only on Commit, stores hold their changelog writes
// back between commits as an App's do, and Crash resets every store to what
// its changelog received, restarts the tasks from their last commit and
// processes the uncommitted input again while the tasks are not caught up —
// the at-least-once replay a real crash causes.
package streamtest
