package streamtest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emostream/emostream/pkg/stream"
)

// Driver runs a topology in memory.
type Driver struct {
	r   *stream.LocalRunner
	reg *prometheus.Registry
}

// New builds a Driver for top. Useful options: stream.Partitions,
// stream.StartTime, stream.OnDeserializationError, stream.ApplicationID.
func New(top *stream.Topology, opts ...stream.Opt) (*Driver, error) {
	r, err := stream.NewLocalRunner(top, opts...)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(r.Collector()); err != nil {
		return nil, err
	}
	return &Driver{r: r, reg: reg}, nil
}

// Restart restarts every task gracefully, as after a clean shutdown or a
// rebalance: the driver commits, closes every processor (Close) and task, and
// creates them again (Init runs again) over the same store contents, with the
// committed epoch (ProcessorContext.CommittedEpoch) and stream time carried over as
// Kafka's commit metadata carries them. Inputs piped before stay available to
// Redeliver; output already read stays read, output not yet read stays
// readable. The driver commits after every Pipe, Redeliver and
// AdvanceWallClock (unless CommitManually), so a Restart never finds
// uncommitted work; use Crash (or Redeliver) to model a crash.
func (d *Driver) Restart() error { return d.r.Restart() }

// CommitManually switches the driver to the crash model, for testing what an
// application does after a SIGKILL: the driver then commits only when
// Commit (or Restart) is called, stores hold their changelog writes back
// between commits in a record cache as an App's do (stream.CacheMaxBytes
// sets its size), and Crash loses whatever did not reach a changelog. Call
// it before the first record.
func (d *Driver) CommitManually() error { return d.r.CommitManually() }

// Commit commits now (see CommitManually): held-back store writes reach the
// changelogs, and the tasks' offsets and commit metadata are recorded.
func (d *Driver) Commit() error { return d.r.Commit() }

// Crash simulates a SIGKILL and a restart under at-least-once processing:
// no Close runs and nothing is committed; each store is reset to what its
// changelog received, the tasks start again from their last commit, and
// every record written after the committed offsets is processed again, in
// its original order, while the tasks are not caught up
// (ProcessorContext.CaughtUp false, InputCompleteAt as the commit recorded
// it). Output written before the crash stays readable, as it stays in
// Kafka. Without CommitManually every step was committed, and Crash only
// recreates the tasks over the same state.
func (d *Driver) Crash() error { return d.r.Crash() }

// DroppedRecords returns stream_dropped_records_total by reason (the records
// processors dropped on purpose with ProcessorContext.RecordDropped, such as late
// records), counted since the driver was created, across restarts.
func (d *Driver) DroppedRecords() map[string]int64 {
	return d.counter("stream_dropped_records_total", "reason")
}

// DeadLetters returns stream_dead_letters_total by reason (the records
// processors sent to a dead-letter topic with ProcessorContext.DeadLetter, such as late
// records), counted since the driver was created, across restarts.
func (d *Driver) DeadLetters() map[string]int64 {
	return d.counter("stream_dead_letters_total", "reason")
}

// counter reads the counter family name by the value of label.
func (d *Driver) counter(name, label string) map[string]int64 {
	out := map[string]int64{}
	families, err := d.reg.Gather()
	if err != nil {
		return out
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += int64(m.GetCounter().GetValue())
				}
			}
		}
	}
	return out
}

// AdvanceWallClock moves the wall clock by d and runs due wall-clock punctuations.
func (d *Driver) AdvanceWallClock(dur time.Duration) error { return d.r.AdvanceWallClock(dur) }

// WallClock is the driver's current wall-clock time.
func (d *Driver) WallClock() time.Time { return d.r.WallClock() }

// RawOutput returns and forgets the serialized records written to topic, with
// their headers (for dead-letter topics, for instance).
func (d *Driver) RawOutput(topic string) []stream.RawRecord { return d.r.Output(topic) }

// Close closes the tasks and their stores.
func (d *Driver) Close() error { return d.r.Close() }

// InputTopic pipes typed records into a source topic.
type InputTopic[K, V any] struct {
	d     *Driver
	topic string
	ks    stream.Serde[K]
	vs    stream.Serde[V]
}

// NewInputTopic returns an InputTopic for topic.
func NewInputTopic[K, V any](d *Driver, topic string, keySerde stream.Serde[K], valueSerde stream.Serde[V]) *InputTopic[K, V] {
	return &InputTopic[K, V]{d: d, topic: topic, ks: keySerde, vs: valueSerde}
}

// Pipe sends k, v with the current wall-clock time as its timestamp.
func (in *InputTopic[K, V]) Pipe(k K, v V) error { return in.PipeAt(k, v, in.d.WallClock()) }

// PipeAt sends k, v with timestamp ts.
func (in *InputTopic[K, V]) PipeAt(k K, v V, ts time.Time) error {
	return in.PipeRecord(stream.Record[K, V]{Key: k, Value: v, Timestamp: ts})
}

// PipeRecord sends rec.
func (in *InputTopic[K, V]) PipeRecord(rec stream.Record[K, V]) error {
	kb, err := in.ks.Serialize(rec.Key)
	if err != nil {
		return err
	}
	vb, err := in.vs.Serialize(rec.Value)
	if err != nil {
		return err
	}
	return in.d.r.Pipe(in.topic, kb, vb, rec.Timestamp, rec.Headers)
}

// PipeRaw sends already serialized bytes, e.g. to test malformed input.
func (in *InputTopic[K, V]) PipeRaw(key, value []byte, ts time.Time) error {
	return in.d.r.Pipe(in.topic, key, value, ts, nil)
}

// OutputTopic reads typed records written to a sink topic.
type OutputTopic[K, V any] struct {
	d     *Driver
	topic string
	ks    stream.Serde[K]
	vs    stream.Serde[V]
}

// NewOutputTopic returns an OutputTopic for topic.
func NewOutputTopic[K, V any](d *Driver, topic string, keySerde stream.Serde[K], valueSerde stream.Serde[V]) *OutputTopic[K, V] {
	return &OutputTopic[K, V]{d: d, topic: topic, ks: keySerde, vs: valueSerde}
}

// ReadRecords returns the records written since the last read, in write order.
func (o *OutputTopic[K, V]) ReadRecords() ([]stream.Record[K, V], error) {
	raw := o.d.r.Output(o.topic)
	out := make([]stream.Record[K, V], 0, len(raw))
	for _, r := range raw {
		k, err := o.ks.Deserialize(r.Key)
		if err != nil {
			return nil, err
		}
		v, err := o.vs.Deserialize(r.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, stream.Record[K, V]{Key: k, Value: v, Timestamp: r.Timestamp, Headers: r.Headers})
	}
	return out, nil
}

// ReadKeyValues returns the keys and values written since the last read.
func (o *OutputTopic[K, V]) ReadKeyValues() ([]stream.KeyValue[K, V], error) {
	recs, err := o.ReadRecords()
	if err != nil {
		return nil, err
	}
	out := make([]stream.KeyValue[K, V], len(recs))
	for i, r := range recs {
		out[i] = stream.KeyValue[K, V]{Key: r.Key, Value: r.Value}
	}
	return out, nil
}

// KeyValueStore returns a read-only view of the store named name over all
// partitions of the driver.
func KeyValueStore[K, V any](d *Driver, name string, keySerde stream.Serde[K]) stream.ReadOnlyKeyValueStore[K, V] {
	return stream.QueryStore[K, V](d.r, name, keySerde)
}

// StoreHost returns the driver's runner as a stream.StoreHost, for queries of
// stores by other packages (window.QueryWindowStore, for instance).
func (d *Driver) StoreHost() stream.StoreHost { return d.r }

// Redeliver processes again, with their original offsets, the records piped
// to partition of topic from offset on, as Kafka redelivers uncommitted input
// after a crash. Use it to check that your topology does not count twice.
func (d *Driver) Redeliver(topic string, partition int32, offset int64) error {
	return d.r.Redeliver(topic, partition, offset)
}
