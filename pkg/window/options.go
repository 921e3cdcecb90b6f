package window

import (
	"time"

	"github.com/emostream/emostream/pkg/stream"
)

// EmitStrategy says when a windowed aggregation forwards results.
type EmitStrategy int

const (
	// OnWindowUpdate forwards the window's new value after every record (a
	// changelog of the window). Kafka Streams' default.
	OnWindowUpdate EmitStrategy = iota
	// OnWindowClose forwards exactly one final result per window and key,
	// when the window closes (Kafka Streams' emitStrategy(onWindowClose) and
	// suppress(untilWindowCloses)).
	OnWindowClose
)

// Opt configures a windowed aggregation.
type Opt func(*options)

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
func Named(name string) Opt { return func(o *options) { o.name = name } }

// Emit chooses the emit strategy (default OnWindowUpdate).
func Emit(s EmitStrategy) Opt { return func(o *options) { o.emit = s } }

// WallClockClose closes windows also when the wall clock passes
// end + grace, so final results appear on time with idle input. On by
// default with OnWindowClose, off with OnWindowUpdate. With it off, stream
// time alone decides, exactly as in Kafka Streams.
func WallClockClose(on bool) Opt { return func(o *options) { o.wallClock = &on } }

// CloseInterval is how often the wall clock is checked (default 100ms).
func CloseInterval(d time.Duration) Opt { return func(o *options) { o.closeInterval = d } }

// LateRecordsTo sends late records to topic (the dead-letter topic) with the
// headers error=late, source_topic, source_partition, source_offset.
func LateRecordsTo(topic string) Opt { return func(o *options) { o.lateTopic = topic } }

// DropLateRecords drops late records, counting them in
// stream_dropped_records_total{reason="late"}. One of DropLateRecords and
// LateRecordsTo is required: late data is never dropped silently by default.
func DropLateRecords() Opt { return func(o *options) { o.dropLate = true } }

// Retention is how long after its end a window's state is kept, for
// interactive queries and to recognise input replayed after a crash (default
// and minimum: size + grace + 5 minutes). Keep it longer than the
// application's CommitInterval.
func Retention(d time.Duration) Opt { return func(o *options) { o.retention = d } }

// StoreOptions passes options (such as stream.Persistent()) to the
// aggregation's stores.
func StoreOptions(opts ...stream.StoreOpt) Opt {
	return func(o *options) { o.storeOpts = append(o.storeOpts, opts...) }
}
