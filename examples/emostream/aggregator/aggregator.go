package aggregator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emostream/emostream/examples/emostream/aggregation"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/window"
)

// DefaultApplicationID is the consumer group and internal-topic prefix of the
// aggregator reading the default input topic. For another input topic the
// default id is "emostream-aggregator-<input topic>", so pipelines on
// different topics of one cluster do not share a group or state.
const DefaultApplicationID = "emostream-aggregator"

// Config configures the aggregator. Zero values take the contract's defaults.
type Config struct {
	Brokers       []string
	ApplicationID string
	InputTopic    string
	OutputTopic   string
	DLQTopic      string
	Partitions    int32
	Window        time.Duration
	Grace         time.Duration
	Scale         int64
	// StateDir keeps the window stores on disk (pebble); empty keeps them in
	// memory and restores them from their changelogs on start.
	StateDir string
	Logger   *slog.Logger
	// StreamTimeOnly turns wall-clock close off, so windows close by stream
	// time alone (as in Kafka Streams). For backfills and benchmarks over
	// historic data, which wall-clock close would declare late.
	StreamTimeOnly bool
	// ExactlyOnce runs the topology with Kafka transactions
	// (stream.ExactlyOnce): results, changelog writes and input offsets
	// commit atomically and consumers read committed data only.
	ExactlyOnce bool
	// Registerer, if set, receives the library's metrics.
	Registerer prometheus.Registerer
	// Extra options for the stream runtime, e.g. stream.SaramaConfig for TLS
	// or SASL, or stream.CommitInterval.
	Extra []stream.Opt
	// StoreOptions are passed to the count's window stores (e.g.
	// stream.Persistent(), which keeps them on disk under the runtime's
	// StateDir; see window.StoreOptions).
	StoreOptions []stream.StoreOpt
	// Aggregations run next to the count, each writing its rows to
	// aggregation.Topic(OutputTopic, name) (see package aggregation). Every
	// aggregator process of one application id must run the same list.
	Aggregations []aggregation.Aggregation
}

func (c *Config) defaults() {
	if c.InputTopic == "" {
		c.InputTopic = "topic1"
	}
	if c.ApplicationID == "" {
		c.ApplicationID = DefaultApplicationID
		if c.InputTopic != "topic1" {
			c.ApplicationID += "-" + c.InputTopic
		}
	}
	if c.OutputTopic == "" {
		c.OutputTopic = "topic2"
	}
	if c.DLQTopic == "" {
		c.DLQTopic = "topic1.dlq"
	}
	if c.Window == 0 {
		c.Window = 2 * time.Second
	}
	if c.Grace == 0 {
		c.Grace = 500 * time.Millisecond
	}
	if c.Scale == 0 {
		c.Scale = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Topology builds the aggregator's topology:
//
//	topic1 (key emoji, JSON event, event time from "timestamp")
//	  -> group by key -> 2 s tumbling count, grace, emit final, wall-clock close
//	  -> map to {"window_start","window_end","emoji_type","count","bursts"}
//	  -> topic2
//	late records -> DLQ (error=late); undecodable records -> DLQ (error=reason)
//
// and, on the same topic1 source and counts, each of cfg.Aggregations
// (package aggregation), writing to <output topic>-<name>.
func Topology(cfg Config) (*stream.Topology, error) {
	cfg.defaults()
	b := stream.NewBuilder()
	events := stream.Source(b, cfg.InputTopic, stream.String(), wire.EventSerde(),
		stream.WithTimestampExtractor(func(r stream.Record[string, wire.Event]) time.Time { return r.Value.Time() }))
	counts := window.Count(stream.GroupByKey(events),
		window.OfSizeAndGrace(cfg.Window, cfg.Grace),
		window.Named("emoji-counts"),
		window.Emit(window.OnWindowClose),
		window.WallClockClose(!cfg.StreamTimeOnly),
		window.LateRecordsTo(cfg.DLQTopic),
		// Check for windows due by the wall clock every 20ms (the runtime's
		// wall-clock tick is 10ms, see Options): results reach topic2 within
		// a few tens of ms of window_end + grace.
		window.CloseInterval(20*time.Millisecond),
		window.StoreOptions(cfg.StoreOptions...),
	)
	results := stream.Map(counts, func(w window.Windowed[string], n int64) (string, wire.Result) {
		return w.Key, wire.NewResult(w.Start.UnixMilli(), cfg.Window, w.Key, n, cfg.Scale)
	})
	results.To(cfg.OutputTopic, stream.String(), wire.ResultSerde())

	in := aggregation.Input{
		Events: events, Counts: counts,
		Windows:        window.OfSizeAndGrace(cfg.Window, cfg.Grace),
		WallClockClose: !cfg.StreamTimeOnly,
		CountLag:       countLag(cfg),
	}
	seen := map[string]bool{}
	for _, a := range cfg.Aggregations {
		if seen[a.Name()] {
			return nil, fmt.Errorf("%w: two aggregations named %q", aggregation.ErrInvalid, a.Name())
		}
		seen[a.Name()] = true
		if err := aggregation.Attach(a, in, aggregation.Topic(cfg.OutputTopic, a.Name())); err != nil {
			return nil, err
		}
	}
	return b.Build()
}

// countLag is how late after window_end + grace a count may reach an
// aggregation of the counts: 1 s, plus the commit interval under
// exactly-once, whose records are readable only once committed.
func countLag(cfg Config) time.Duration {
	if cfg.ExactlyOnce {
		return time.Second + commitInterval
	}
	return time.Second
}

// Options returns the runtime options the aggregator uses, for Run and tests.
func Options(cfg Config) []stream.Opt {
	cfg.defaults()
	opts := []stream.Opt{
		stream.Brokers(cfg.Brokers...),
		stream.ApplicationID(cfg.ApplicationID),
		stream.Logger(cfg.Logger),
		stream.OnDeserializationError(stream.SendToDeadLetter, cfg.DLQTopic),
		stream.CommitInterval(commitInterval),
		stream.WallClockInterval(10 * time.Millisecond),
		stream.RestartOnFailure(maxQuickRestarts, restartBackoff),
	}
	if cfg.StateDir != "" {
		opts = append(opts, stream.StateDir(cfg.StateDir))
	}
	if cfg.ExactlyOnce {
		opts = append(opts, stream.ExactlyOnce())
	}
	opts = append(opts, cfg.Extra...)
	return opts
}

// Run runs the aggregator until ctx is cancelled.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if len(cfg.Brokers) == 0 {
		return errors.New("aggregator: no brokers")
	}
	top, err := Topology(cfg)
	if err != nil {
		return err
	}
	// A runtime failure (a broker restart that outlasts the producer's
	// retries, a fenced transactional producer) restarts the runtime inside
	// app.Run, as Kafka Streams replaces a dead stream thread: the new one
	// restores its state from the changelogs and resumes from the committed
	// offsets, so nothing is lost or counted twice. Only quick repeated
	// failures give up (see Options and stream.RestartOnFailure).
	app, err := stream.NewApp(top, Options(cfg)...)
	if err != nil {
		return err
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(app.Collector()); err != nil {
			return err
		}
		defer cfg.Registerer.Unregister(app.Collector())
	}
	return app.Run(ctx)
}

// maxQuickRestarts is how many times in a row the aggregator restarts after
// a failure within a minute of starting before Run gives up; the backoff
// starts at restartBackoff and doubles up to 30 s.
const (
	// commitInterval is how often the aggregator commits (and, under
	// exactly-once, how often its output becomes readable).
	commitInterval   = time.Second
	maxQuickRestarts = 10
	restartBackoff   = time.Second
)
