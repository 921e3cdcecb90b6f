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

// producer is the API's connection to Kafka: a few independent lanes, each
// its own sarama client (its own connection to every broker) and
// idempotent AsyncProducer. Idempotence allows sarama only one produce
// request in flight per connection, so with one lane every request waited
// for the produce request ahead of it to be acknowledged before its own
// could go out; with several, produce requests overlap. A request's records
// all go to one lane (the least busy), so its batch is still one unit.
type producer struct {
	lanes []*lane

	// mu guards sends against Close: a send on a producer's input channel
	// after AsyncClose would panic.
	mu     sync.RWMutex
	closed bool
}

// lane is one client and the AsyncProducer on it.
type lane struct {
	client  sarama.Client
	async   sarama.AsyncProducer
	acked   chan struct{} // closed when both report loops have ended
	pending atomic.Int64  // records handed over and not yet reported
}

// batch tracks one request's records until the producer reported each.
type batch struct {
	remaining atomic.Int64
	done      chan struct{}
	lane      *lane // where its records went

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
// make a 202 durable; idempotence (which sarama allows only with one request
// in flight per connection) keeps sarama's retries from duplicating or
// reordering records. Records are flushed as soon as the lane's connection
// is free: while a produce request is in flight, the records of concurrent
// requests gather and go out together in the next one, so batching comes
// from the load itself and costs no waiting when the load is light.
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
	// All three zero: flush whenever the connection is free (see above).
	// A fixed interval (it was 2 ms) made every request wait for it.
	sc.Producer.Flush.Frequency = 0
	sc.Producer.Flush.Messages = 0
	sc.Producer.Flush.Bytes = 0
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

// dial connects Config.Producers lanes; if one fails, the others are
// closed again.
func (s *Server) dial() (*producer, error) {
	p := &producer{}
	for range s.cfg.Producers {
		l, err := s.dialLane()
		if err != nil {
			for _, l := range p.lanes {
				_ = l.close()
			}
			return nil, err
		}
		p.lanes = append(p.lanes, l)
	}
	return p, nil
}

func (s *Server) dialLane() (*lane, error) {
	client, err := sarama.NewClient(s.cfg.Brokers, s.saramaConfig())
	if err != nil {
		return nil, err
	}
	async, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	l := &lane{client: client, async: async, acked: make(chan struct{})}
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
	go func() { wg.Wait(); close(l.acked) }()
	return l, nil
}

// reported settles one record: its request learns the outcome and its
// budget is returned. This is the only place budget comes back for a record
// that reached the producer, so a request that gave up waiting cannot free
// memory the producer still holds.
func (s *Server) reported(m *sarama.ProducerMessage, err error) {
	s.budget.Release(1)
	s.met.inflight.Dec()
	if b, ok := m.Metadata.(*batch); ok {
		if b.lane != nil {
			b.lane.pending.Add(-1)
		}
		b.finish(err)
	}
}

// pick returns the lane with the fewest records waiting for Kafka (the
// first on a tie, so a light load uses one connection and its batches stay
// large).
func (p *producer) pick() *lane {
	best := p.lanes[0]
	low := best.pending.Load()
	for _, l := range p.lanes[1:] {
		if n := l.pending.Load(); n < low {
			best, low = l, n
		}
	}
	return best
}

// send hands msgs, all carrying batch b, to one lane, stopping when ctx
// ends; it returns how many it handed over.
func (p *producer) send(ctx context.Context, b *batch, msgs []*sarama.ProducerMessage) (int, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return 0, ErrShuttingDown
	}
	l := p.pick()
	b.lane = l
	for i, m := range msgs {
		l.pending.Add(1)
		select {
		case l.async.Input() <- m:
		case <-ctx.Done():
			l.pending.Add(-1)
			return i, ctx.Err()
		}
	}
	return len(msgs), nil
}

// close flushes what the lanes hold, waits until every record was
// reported, and disconnects.
func (p *producer) close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	errs := make([]error, len(p.lanes))
	var wg sync.WaitGroup
	for i, l := range p.lanes {
		wg.Go(func() { errs[i] = l.close() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (l *lane) close() error {
	err := l.async.Close()
	<-l.acked
	if cerr := l.client.Close(); cerr != nil && !errors.Is(cerr, sarama.ErrClosedClient) {
		err = errors.Join(err, cerr)
	}
	return err
}

// probe checks that Kafka serves the input topic. RefreshMetadata asks a
// broker, so a dead cluster shows up here even while no requests arrive.
func (s *Server) probe(p *producer) {
	client := p.lanes[0].client
	err := client.RefreshMetadata(s.cfg.Topic)
	if err == nil {
		var parts []int32
		parts, err = client.WritablePartitions(s.cfg.Topic)
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
