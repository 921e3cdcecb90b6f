package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/examples/emostream/wire"
)

// backfillWait bounds how long start-up waits for the backfill.
const backfillWait = 5 * time.Second

func (s *Server) saramaConfig() *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.ClientID = "emostream-dashboard"
	sc.Net.DialTimeout = 5 * time.Second
	sc.Metadata.AllowAutoTopicCreation = false
	if s.cfg.Sarama != nil {
		s.cfg.Sarama(sc)
	}
	// Results of an aborted transaction never happened.
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	sc.Consumer.Return.Errors = true
	return sc
}

// consume reads the output topic until ctx ends. Connection and topic
// problems at start are retried: the dashboard may come up before Kafka or
// before the aggregator created anything.
func (s *Server) consume(ctx context.Context) error {
	var (
		client sarama.Client
		parts  []int32
	)
	err := retry(ctx, s, func() error {
		var err error
		if client == nil {
			if client, err = sarama.NewClient(s.cfg.Brokers, s.saramaConfig()); err != nil {
				return fmt.Errorf("connecting to %v: %w", s.cfg.Brokers, err)
			}
		}
		if err = client.RefreshMetadata(s.cfg.Topic); err == nil {
			parts, err = client.Partitions(s.cfg.Topic)
		}
		if err == nil && len(parts) == 0 {
			err = errors.New("no partitions")
		}
		if err != nil {
			return fmt.Errorf("topic %q: %w", s.cfg.Topic, err)
		}
		return nil
	})
	if err != nil {
		if client != nil {
			_ = client.Close()
		}
		return nil // cancelled while waiting: nothing to report
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("dashboard: consumer: %w", err)
	}
	defer consumer.Close()

	var wg sync.WaitGroup
	var pcs []sarama.PartitionConsumer
	// caughtUp counts partitions whose backfill is read; the dashboard is
	// ready then, so a page opened right after start draws the history.
	caughtUp := make(chan struct{}, len(parts))
	defer func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
		wg.Wait()
	}()
	for _, p := range parts {
		newest, err := client.GetOffset(s.cfg.Topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("dashboard: newest offset of %s/%d: %w", s.cfg.Topic, p, err)
		}
		oldest, err := client.GetOffset(s.cfg.Topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("dashboard: oldest offset of %s/%d: %w", s.cfg.Topic, p, err)
		}
		start := max(oldest, newest-int64(s.cfg.Backfill))
		if start >= newest {
			caughtUp <- struct{}{}
		}
		pc, err := consumer.ConsumePartition(s.cfg.Topic, p, start)
		if err != nil {
			return fmt.Errorf("dashboard: consuming %s/%d: %w", s.cfg.Topic, p, err)
		}
		pcs = append(pcs, pc)
		wg.Add(2)
		go func() {
			defer wg.Done()
			backfilling := start < newest
			for m := range pc.Messages() {
				s.receive(m.Value, m.Offset < newest)
				if backfilling && m.Offset >= newest-1 {
					backfilling = false
					caughtUp <- struct{}{}
				}
			}
		}()
		go func() {
			defer wg.Done()
			for err := range pc.Errors() {
				s.log.Warn("reading results", "partition", err.Partition, "err", err.Err)
			}
		}()
	}
	// A transaction marker can be the last offset, and it is never
	// delivered; after backfillWait the backfill is as complete as it gets.
	timeout := time.After(backfillWait)
wait:
	for range parts {
		select {
		case <-caughtUp:
		case <-timeout:
			break wait
		case <-ctx.Done():
			return nil
		}
	}
	s.setReady(nil)
	s.log.Info("reading results", "topic", s.cfg.Topic, "partitions", len(parts), "backfill_per_partition", s.cfg.Backfill)
	<-ctx.Done()
	return nil
}

// retry runs fn until it succeeds or ctx ends, backing off and reporting
// the failure as the readiness error.
func retry(ctx context.Context, s *Server, fn func() error) error {
	backoff := 250 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		s.setReady(err)
		s.log.Warn("waiting for Kafka", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// receive handles one topic2 record. Backfilled records only fill the
// history: viewers connected before they were read get them from
// /api/windows, and their latency says nothing about the pipeline now.
func (s *Server) receive(value []byte, backfill bool) {
	now := time.Now()
	r, err := wire.DecodeResult(value)
	if err != nil {
		s.met.invalid.Inc()
		s.log.Debug("skipping invalid result", "err", err)
		return
	}
	s.met.results.Inc()
	if !s.hist.add(r) {
		s.met.duplicates.Inc()
	}
	if backfill {
		return
	}
	closed := time.UnixMilli(r.WindowEnd).Add(s.cfg.Grace)
	s.met.latency.Observe(max(0, now.Sub(closed).Seconds()))

	// The value goes out as Kafka has it, only compacted: an SSE data line
	// must not contain a newline.
	var buf bytes.Buffer
	buf.Grow(len(value) + 24)
	buf.WriteString("event: window\ndata: ")
	if err := json.Compact(&buf, value); err != nil {
		return // DecodeResult accepted it, so this cannot happen
	}
	buf.WriteString("\n\n")
	s.hub.broadcast(buf.Bytes())
}
