package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// probeInterval is how often the server checks that Kafka still serves the
// input topic, for /healthz.
const probeInterval = 2 * time.Second

// producer is one connection to Kafka and the AsyncProducer on it.
type producer struct {
	client sarama.Client
	async  sarama.AsyncProducer
	acked  chan struct{} // closed when both report loops have ended

	// mu guards sends against Close: a send on the producer's input
	// channel after AsyncClose would panic.
	mu     sync.RWMutex
	closed bool
}

// batch tracks one request's records until the producer reported each.
type batch struct {
	remaining atomic.Int64
	done      chan struct{}

	mu  sync.Mutex
	err error // the first failure
}

func newBatch(n int) *batch {
	b := &batch{done: make(chan struct{})}
	b.remaining.Store(int64(n))
	return b
}

func (b *batch) finish(err error) {
	if err != nil {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	if b.remaining.Add(-1) == 0 {
		close(b.done)
	}
}

func (b *batch) result() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// saramaConfig is the producer configuration. Acks from all in-sync replicas
// make a 202 durable; idempotence with one request in flight per connection
// keeps sarama's retries from duplicating or reordering records; the short
// flush interval lets concurrent requests share produce requests without
// adding noticeable latency.
func (s *Server) saramaConfig() *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.ClientID = "emostream-api"
	sc.Net.DialTimeout = 5 * time.Second
	sc.Metadata.Retry.Max = 3
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	// The topic's partition count is part of the data layout; a missing
	// topic is a deployment error, not something to paper over with a
	// broker-default topic.
	sc.Metadata.AllowAutoTopicCreation = false
	sc.Producer.Retry.Max = 5
	sc.Producer.Retry.Backoff = 200 * time.Millisecond
	if s.cfg.Sarama != nil {
		s.cfg.Sarama(sc)
	}
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Flush.Frequency = 2 * time.Millisecond
	// The aggregator and Java clients must agree on where a key lives.
	sc.Producer.Partitioner = sarama.NewMurmur2Partitioner
	return sc
}

// connect dials Kafka until it succeeds or ctx ends. Kafka may start after
// the API (compose, restarts), so failure to connect is not fatal: requests
// meanwhile get 503 and /healthz says why.
func (s *Server) connect(ctx context.Context) (*producer, error) {
	backoff := 250 * time.Millisecond
	for {
		p, err := s.dial()
		if err == nil {
			return p, nil
		}
		s.setProbe(fmt.Errorf("%w: %v", ErrKafkaUnavailable, err))
		s.log.Warn("cannot connect to Kafka; retrying", "brokers", s.cfg.Brokers, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (s *Server) dial() (*producer, error) {
	client, err := sarama.NewClient(s.cfg.Brokers, s.saramaConfig())
	if err != nil {
		return nil, err
	}
	async, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	p := &producer{client: client, async: async, acked: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for m := range async.Successes() {
			s.reported(m, nil)
		}
	}()
	go func() {
		defer wg.Done()
		for e := range async.Errors() {
			s.met.failed.Inc()
			s.reported(e.Msg, e.Err)
		}
	}()
	go func() { wg.Wait(); close(p.acked) }()
	return p, nil
}

// reported settles one record: its request learns the outcome and its
// budget is returned. This is the only place budget comes back for a record
// that reached the producer, so a request that gave up waiting cannot free
// memory the producer still holds.
func (s *Server) reported(m *sarama.ProducerMessage, err error) {
	s.budget.Release(1)
	s.met.inflight.Dec()
	if b, ok := m.Metadata.(*batch); ok {
		b.finish(err)
	}
}

// send hands msgs to the producer, stopping when ctx ends; it returns how
// many it handed over.
func (p *producer) send(ctx context.Context, msgs []*sarama.ProducerMessage) (int, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return 0, ErrShuttingDown
	}
	for i, m := range msgs {
		select {
		case p.async.Input() <- m:
		case <-ctx.Done():
			return i, ctx.Err()
		}
	}
	return len(msgs), nil
}

// close flushes what the producer holds, waits until every record was
// reported, and disconnects.
func (p *producer) close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.async.Close()
	<-p.acked
	if cerr := p.client.Close(); cerr != nil && !errors.Is(cerr, sarama.ErrClosedClient) {
		err = errors.Join(err, cerr)
	}
	return err
}

// probe checks that Kafka serves the input topic. RefreshMetadata asks a
// broker, so a dead cluster shows up here even while no requests arrive.
func (s *Server) probe(p *producer) {
	err := p.client.RefreshMetadata(s.cfg.Topic)
	if err == nil {
		var parts []int32
		parts, err = p.client.WritablePartitions(s.cfg.Topic)
		if err == nil && len(parts) == 0 {
			err = fmt.Errorf("topic %q has no writable partitions", s.cfg.Topic)
		}
	}
	if err != nil {
		s.setProbe(fmt.Errorf("%w: %v", ErrKafkaUnavailable, err))
		return
	}
	s.setProbe(nil)
}

func (s *Server) probeLoop(ctx context.Context, p *producer) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		s.probe(p)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) setProbe(err error) {
	s.probeMu.Lock()
	s.probeErr = err
	s.probeMu.Unlock()
	if err != nil {
		s.met.kafkaUp.Set(0)
	} else {
		s.met.kafkaUp.Set(1)
	}
}
