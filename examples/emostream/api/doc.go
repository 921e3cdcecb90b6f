// Package api is EmoStream's ingest API: clients POST emoji objects to /api
// and the server writes them to the input topic (topic1).
//
// # Acknowledgement
//
// A request is answered 202 {"accepted": N} only after Kafka acknowledged
// every one of its records with acks=all, so an accepted emoji survives the
// loss of the API process. Records of all concurrent requests go through a
// few idempotent sarama AsyncProducers ([Config.Producers], each its own
// connection with one produce request in flight; a request's records all go
// to the least busy one). A producer sends as soon as its connection is
// free, so under load the requests that arrive while a produce request is in
// flight share the next one, and each handler waits only for the
// acknowledgements of its own records.
//
// # Batches
//
// The body is one emoji object or an array of up to [MaxBatch]. A batch is
// validated whole before anything is sent, so one bad object rejects the
// batch (400, with the index of the first bad object) and nothing of it
// reaches Kafka. Once sent, a batch is answered 202 only if every record was
// acknowledged; otherwise 503. Records of one batch go to different
// partitions and Kafka has no atomic write across partitions without
// transactions, so after a 503 some records of the batch may already be in
// topic1: a client that retries may write those twice.
//
// # Back-pressure
//
// Memory is bounded by a budget of records in flight (sent, not yet
// acknowledged) and a cap on concurrent requests. When Kafka is slow or away,
// requests wait at most the acknowledgement timeout for budget and acks and
// then get 503; the records they already handed to the producer keep their
// budget until the producer reports them, so an outage cannot pile up
// unbounded work.
//
// # Shutdown
//
// When Run's context ends, new requests get 503, requests in flight get
// their answers, and the producer flushes what it holds before it closes.
package api
