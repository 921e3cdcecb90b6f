package dashboard

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of [Config].
const (
	DefaultTopic        = "topic2"
	DefaultHistory      = 5000
	DefaultBackfill     = 500
	DefaultViewerBuffer = 1024
	// DefaultMaxViewers is sized by measurement: an open event stream
	// costs the server about 6 KiB (26 KiB for one the writer pool cannot
	// take; docs/performance.md), so 10,000 viewers take about 60 MiB.
	DefaultMaxViewers = 10000
	// DefaultLimit is the number of results /api/windows returns without
	// a limit parameter.
	DefaultLimit = 100
)

// Config configures a [Server]. Only Brokers is required.
type Config struct {
	// Brokers is the Kafka bootstrap list.
	Brokers []string
	// Topic is the output topic with the window results (default
	// "topic2").
	Topic string
	// HTTP is the listen address for [Server.Run], which then serves the
	// dashboard with /healthz and /metrics. Leave it empty to mount
	// [Server.Handler] on a server of your own.
	HTTP string
	// Window and Grace are the aggregator's settings. The page uses them to
	// lay out its chart and to measure latency from window_end + Grace.
	Window, Grace time.Duration
	// Scale is the aggregator's count-per-burst, shown on the page.
	Scale int64
	// History is how many results the server keeps for /api/windows
	// (default 5000).
	History int
	// Backfill is how many records per partition are read back on start to
	// fill the history (default 500; negative for none).
	Backfill int
	// ViewerBuffer is how many events a viewer may lag behind before it is
	// disconnected and counted in emostream_dashboard_viewers_dropped_total
	// (default 1024). The events are kept once for all viewers.
	ViewerBuffer int
	// MaxViewers caps concurrent /events streams (default 10,000); more
	// are refused with 503 and Retry-After, and the page retries.
	MaxViewers int
	// Registry receives the dashboard's metrics; nil means a registry of
	// its own.
	Registry *prometheus.Registry
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Sarama, if set, adjusts the consumer's sarama configuration (TLS,
	// SASL...).
	Sarama func(*sarama.Config)
	// Panels are the extra aggregations to show, each in a generic panel
	// (see panels.go); none by default.
	Panels []Panel
}

func (c *Config) setDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Window == 0 {
		c.Window = 2 * time.Second
	}
	if c.Scale == 0 {
		c.Scale = 1000
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	if c.Backfill == 0 {
		c.Backfill = DefaultBackfill
	}
	if c.Backfill < 0 {
		c.Backfill = 0
	}
	if c.ViewerBuffer == 0 {
		c.ViewerBuffer = DefaultViewerBuffer
	}
	if c.MaxViewers == 0 {
		c.MaxViewers = DefaultMaxViewers
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers are required (Brokers)"))
	}
	if c.Window <= 0 {
		errs = append(errs, fmt.Errorf("window must be positive (Window), got %v", c.Window))
	}
	if c.Grace < 0 {
		errs = append(errs, fmt.Errorf("grace must not be negative (Grace), got %v", c.Grace))
	}
	if c.History < 1 || c.ViewerBuffer < 1 || c.MaxViewers < 1 {
		errs = append(errs, errors.New("history, viewer buffer and max viewers must be positive (History, ViewerBuffer, MaxViewers)"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dashboard: invalid config: %w", err)
	}
	return nil
}
