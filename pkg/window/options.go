package window

import (
	"fmt"
	"time"

	"github.com/emostream/emostream/pkg/stream"
)

// EmitStrategy says when a windowed aggregation forwards results.
type EmitStrategy int

const (
	// OnWindowUpdate forwards the window's new value after every record (a
	// changelog of the window). Kafka Streams' default,
	// emitStrategy(onWindowUpdate()).
	OnWindowUpdate EmitStrategy = iota
	// OnWindowClose forwards exactly one final result per window and key,
	// when the window closes: when it can no longer take records. Kafka
	// Streams' emitStrategy(onWindowClose()).
	OnWindowClose
	// UntilWindowCloses forwards the updates of OnWindowUpdate through Kafka
	// Streams' suppress(untilWindowCloses(unbounded())): a window's latest
	// value is forwarded when stream time reaches the window's end + grace
	// (end + gap + grace for sessions). For time windows that is exactly
	// OnWindowClose. For session and sliding windows, whose end is
	// inclusive, it is one millisecond of stream time before the window
	// closes: a record at that instant can still change the window, and the
	// window is forwarded again after each such change, as Kafka Streams
	// does. Choose it to reproduce a suppress-based Kafka Streams topology
	// record for record; otherwise prefer OnWindowClose.
	UntilWindowCloses
)

// String names the strategy.
func (s EmitStrategy) String() string {
	switch s {
	case OnWindowUpdate:
		return "OnWindowUpdate"
	case OnWindowClose:
		return "OnWindowClose"
	case UntilWindowCloses:
		return "UntilWindowCloses"
	}
	return fmt.Sprintf("EmitStrategy(%d)", int(s))
}

// Opt configures a windowed aggregation. Options are made by the functions
// of this package (Named, Emit, LateRecordsTo, ...), as stream.Opt
// configures an App.
type Opt interface{ apply(*options) }

type optFunc func(*options)

func (f optFunc) apply(o *options) { f(o) }

type options struct {
	name          string
	emit          EmitStrategy
	wallClock     *bool
	closeInterval time.Duration
	lateTopic     string
	dropLate      bool
	retention     time.Duration
	storeOpts     []stream.StoreOpt
}

// Named names the aggregation's processor and its stores (<name>-store,
// <name>-index), so their changelog topics have stable names.
func Named(name string) Opt { return optFunc(func(o *options) { o.name = name }) }

// Emit chooses the emit strategy (default OnWindowUpdate).
func Emit(s EmitStrategy) Opt { return optFunc(func(o *options) { o.emit = s }) }

// WallClockClose closes windows also when the wall clock passes
// end + grace, so final results appear on time with idle input. On by
// default with OnWindowClose and UntilWindowCloses, off with OnWindowUpdate. With it off, stream
// time alone decides, exactly as in Kafka Streams.
func WallClockClose(on bool) Opt { return optFunc(func(o *options) { o.wallClock = &on }) }

// CloseInterval is how often the wall clock is checked (default 100ms).
func CloseInterval(d time.Duration) Opt { return optFunc(func(o *options) { o.closeInterval = d }) }

// LateRecordsTo sends late records to topic (the dead-letter topic) with the
// headers error=late, source_topic, source_partition, source_offset. A
// record is late when it is aggregated into no window because every window
// it belongs to is closed. Records with a negative timestamp (which belong to
// no window; Kafka Streams drops them at the source) go there too, with
// error=negative_timestamp.
func LateRecordsTo(topic string) Opt { return optFunc(func(o *options) { o.lateTopic = topic }) }

// DropLateRecords drops late records, counting them in
// stream_dropped_records_total{reason="late"} (and records with a negative
// timestamp in {reason="negative_timestamp"}). One of DropLateRecords and
// LateRecordsTo is required: late data is never dropped silently by default.
func DropLateRecords() Opt { return optFunc(func(o *options) { o.dropLate = true }) }

// Retention is how long after its close a window's state is kept, for
// interactive queries. Default and minimum: Kafka Streams' default, size +
// grace, for time windows; size + grace + 5 minutes for sliding windows (2 *
// difference) and sessions (gap). Whatever the retention, a window is purged
// only once a commit covered its close, so input replayed after a crash
// always finds the windows it was counted in.
func Retention(d time.Duration) Opt { return optFunc(func(o *options) { o.retention = d }) }

// StoreOptions passes options (such as stream.Persistent()) to the
// aggregation's stores.
func StoreOptions(opts ...stream.StoreOpt) Opt {
	return optFunc(func(o *options) { o.storeOpts = append(o.storeOpts, opts...) })
}
