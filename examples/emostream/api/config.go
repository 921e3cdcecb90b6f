package api

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
)

// Limits of the HTTP interface, from the contract.
const (
	// MaxBodyBytes is the largest request body; larger ones get 413.
	MaxBodyBytes = 1 << 20
	// MaxBatch is the most emoji objects in one request.
	MaxBatch = 1000
)

// Defaults of [Config].
const (
	DefaultTopic         = "topic1"
	DefaultAckTimeout    = 5 * time.Second
	DefaultMaxInFlight   = 20000
	DefaultMaxConcurrent = 1024
	DefaultProducers     = 2
)

// Config configures a [Server]. Only Brokers is required.
type Config struct {
	// Brokers is the Kafka bootstrap list.
	Brokers []string
	// Topic is the input topic the emojis go to (default "topic1"). It
	// must exist: the API does not create topics.
	Topic string
	// HTTP is the listen address for [Server.Run], which then serves
	// /api, /healthz and /metrics itself. Leave it empty to mount
	// [Server.Handler] on a server of your own.
	HTTP string
	// AckTimeout bounds how long a request waits for in-flight budget and
	// Kafka's acknowledgements before it is answered 503 (default 5s).
	AckTimeout time.Duration
	// MaxInFlight is the budget of records handed to the producer and not
	// yet acknowledged, which bounds the producer's memory (default 20000;
	// at least MaxBatch).
	MaxInFlight int
	// MaxConcurrent caps the requests handled at once; more get 503 at once
	// (default 1024).
	MaxConcurrent int
	// Producers is the number of independent idempotent producers (each
	// its own connection to every broker, with one produce request in
	// flight) requests are spread over, so produce requests overlap
	// (default 2; 1 to 16).
	Producers int
	// Registry receives the API's metrics. Nil means a registry of its own,
	// with the Go and process collectors.
	Registry *prometheus.Registry
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Sarama, if set, adjusts the producer's sarama configuration (TLS,
	// SASL, client id...). The settings the acknowledgement guarantee rests
	// on (acks=all, idempotence, one request in flight per connection, the
	// partitioner) are applied after it.
	Sarama func(*sarama.Config)
}

func (c *Config) setDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.Producers == 0 {
		c.Producers = DefaultProducers
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
	if c.AckTimeout < 0 {
		errs = append(errs, fmt.Errorf("AckTimeout must be positive, got %v", c.AckTimeout))
	}
	if c.MaxInFlight < MaxBatch {
		errs = append(errs, fmt.Errorf("MaxInFlight must be at least %d (one full batch), got %d", MaxBatch, c.MaxInFlight))
	}
	if c.MaxConcurrent < 1 {
		errs = append(errs, fmt.Errorf("MaxConcurrent must be positive, got %d", c.MaxConcurrent))
	}
	if c.Producers < 1 || c.Producers > 16 {
		//lint:ignore ST1005 the message starts with the Config field's name, as its neighbours do
		errs = append(errs, fmt.Errorf("Producers must be 1 to 16, got %d", c.Producers))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("api: invalid config: %w", err)
	}
	return nil
}
