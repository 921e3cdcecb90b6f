package stream

import "time"

// SetRestoreRun makes restores into ingesting stores (Pebble) hand over
// runs of at most n records and ingest runs of at least minRun, and returns
// a function that restores the defaults.
func SetRestoreRun(n, minRun int) (reset func()) {
	was, wasMin := restoreRun, restoreRunMin
	restoreRun, restoreRunMin = n, minRun
	return func() { restoreRun, restoreRunMin = was, wasMin }
}

// AckTimeout sets how long a commit waits for acknowledgements (45 s
// otherwise).
func AckTimeout(d time.Duration) Opt { return optFunc(func(c *config) { c.ackTimeout = d }) }

// ProducerRetries lowers the producer's retry budget to n tries 100 ms
// apart (the runtime raises anything below 240 tries 250 ms apart
// otherwise).
func ProducerRetries(n int) Opt { return optFunc(func(c *config) { c.producerRetries = n }) }

// SetStallAfter sets how long a partition may deliver nothing, while
// records wait or its leader does not answer, before the runtime warns (10
// s otherwise), and returns a function that restores the default.
func SetStallAfter(d time.Duration) (reset func()) {
	was := stallAfter
	stallAfter = d
	return func() { stallAfter = was }
}

// RecordAt reports whether a consumer (one that reads committed data only,
// if readCommitted) would receive a record at or past off of
// topic/partition p; see probeGap.
var RecordAt = recordAt
