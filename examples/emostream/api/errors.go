package api

import "errors"

var (
	// ErrKafkaUnavailable is the cause of a 503: the records were not
	// acknowledged by Kafka in time, or no connection to Kafka exists.
	ErrKafkaUnavailable = errors.New("api: kafka unavailable")
	// ErrShuttingDown is the cause of a 503 while the server drains.
	ErrShuttingDown = errors.New("api: shutting down")
)
