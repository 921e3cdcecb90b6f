package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	// A partition whose leader went away is looked up again after this
	// (sarama's default is 2 s): a restarted broker is read again sooner.
	sc.Consumer.Retry.Backoff = 500 * time.Millisecond
	if s.cfg.Sarama != nil {
		s.cfg.Sarama(sc)
	}
	// Results of an aborted transaction never happened.
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	sc.Consumer.Return.Errors = true
	return sc
}

// probeInterval is how often a running consumer checks that Kafka still
// serves the topic, for /healthz.
const probeInterval = time.Second

// steadyAfter is how long a consumer session must last for the next failure
// to be retried quickly again.
const steadyAfter = 30 * time.Second

// errSession ends a consumer session so that consume sets it up again.
var errSession = errors.New("dashboard: consumer must restart")

// consume reads the output topic until ctx ends. Every failure is retried
// with backoff: the dashboard may come up before Kafka or before the
// aggregator created anything, and Kafka may restart under it. Each try is a
// session (one client, one consumer per partition); it resumes where the
// last one stopped.
func (s *Server) consume(ctx context.Context) error {
	s.retrySessions(ctx, "reading results failed; retrying", s.session, func(first bool, err error) {
		if !first {
			s.met.restarts.Inc()
		}
		s.setReady(err)
	})
	return nil
}

// Backoff between consumer sessions.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// session sets the consumer up and reads until ctx ends or Kafka fails in a
// way the client does not recover from by itself: a partition's next offset
// is out of range (the broker restarted empty, or retention deleted it), the
// log went backwards, or the partitions changed.
func (s *Server) session(ctx context.Context) error {
	k, ctx, err := s.openSession(ctx)
	if err != nil {
		return err
	}
	defer k.close()
	client := k.client
	parts, err := partitions(client, s.cfg.Topic)
	if err != nil {
		return err
	}
	// caughtUp counts partitions whose backlog (the backfill at start-up,
	// the records missed during an outage later) is read; the dashboard is
	// ready then, so a page opened right after start draws the history.
	caughtUp := make(chan struct{}, len(parts))
	newest := map[int32]int64{}
	// The first session's backlog only fills the history; a later
	// session's backlog is results viewers have not seen yet.
	history := !s.started
	for _, p := range parts {
		start, hwm, err := s.startOffset(client, p)
		if err != nil {
			return err
		}
		newest[p] = hwm
		backlog := start < hwm
		err = k.read(s.cfg.Topic, p, start, func(m *sarama.ConsumerMessage) {
			s.receive(m.Value, history && m.Offset < hwm)
			s.setNext(p, m.Offset+1)
			if backlog && m.Offset >= hwm-1 {
				backlog = false
				caughtUp <- struct{}{}
			}
		}, func(err *sarama.ConsumerError) {
			s.log.Warn("reading results", "partition", err.Partition, "err", err.Err)
		})
		if err != nil {
			return err
		}
		if start >= hwm {
			caughtUp <- struct{}{}
		}
	}
	// A transaction marker can be the last offset, and it is never
	// delivered; after backfillWait the backlog is as complete as it gets.
	timeout := time.After(backfillWait)
wait:
	for range parts {
		select {
		case <-caughtUp:
		case <-timeout:
			break wait
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	s.started = true
	s.setReady(nil)
	s.log.Info("reading results", "topic", s.cfg.Topic, "partitions", len(parts), "backfill_per_partition", s.cfg.Backfill)

	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return sessionEnd(ctx)
		case <-t.C:
		}
		if err := s.probe(client, parts, newest); err != nil {
			if errors.Is(err, errSession) {
				return err
			}
			s.setReady(err)
			continue
		}
		s.setReady(nil)
	}
}

// partitions returns the topic's partitions, asking the brokers.
func partitions(client sarama.Client, topic string) ([]int32, error) {
	err := client.RefreshMetadata(topic)
	var parts []int32
	if err == nil {
		parts, err = client.Partitions(topic)
	}
	if err == nil && len(parts) == 0 {
		err = errors.New("no partitions")
	}
	if err != nil {
		return nil, fmt.Errorf("dashboard: kafka: topic %q: %w", topic, err)
	}
	return parts, nil
}

// startOffset is where a session reads partition p from, and the
// partition's end offset (high-water mark) now.
//
// The first session starts Config.Backfill records before the end. A later
// one goes on from the next offset the last one did not read. When that
// offset is no longer in the log, because the broker restarted without its
// data (or retention deleted records never read), the partition is reset
// to the same place as at start-up, max(oldest, end − Backfill), and the
// reset is logged and counted: the results there are new to the viewers and
// the history drops any it already has.
func (s *Server) startOffset(client sarama.Client, p int32) (start, newest int64, err error) {
	if newest, err = client.GetOffset(s.cfg.Topic, p, sarama.OffsetNewest); err != nil {
		return 0, 0, fmt.Errorf("dashboard: kafka: end offset of %s/%d: %w", s.cfg.Topic, p, err)
	}
	oldest, err := client.GetOffset(s.cfg.Topic, p, sarama.OffsetOldest)
	if err != nil {
		return 0, 0, fmt.Errorf("dashboard: kafka: start offset of %s/%d: %w", s.cfg.Topic, p, err)
	}
	reset := max(oldest, newest-int64(s.cfg.Backfill))
	next, known := s.nextOffset(p)
	switch {
	case !known:
		return reset, newest, nil
	case next >= oldest && next <= newest:
		return next, newest, nil
	}
	s.met.resets.Inc()
	s.log.Warn("next offset is out of range; resetting", "topic", s.cfg.Topic, "partition", p,
		"next", next, "oldest", oldest, "newest", newest, "reset_to", reset)
	return reset, newest, nil
}

// probe checks that Kafka still serves every partition and that no log went
// backwards. A log whose end offset is lower than before was recreated (an
// in-memory broker restarted): the session must restart so that the
// partition is reset, which errSession asks for.
func (s *Server) probe(client sarama.Client, parts []int32, newest map[int32]int64) error {
	now, err := partitions(client, s.cfg.Topic)
	if err != nil {
		return err
	}
	if len(now) != len(parts) {
		return fmt.Errorf("%w: %s has %d partitions, had %d", errSession, s.cfg.Topic, len(now), len(parts))
	}
	for _, p := range parts {
		hwm, err := client.GetOffset(s.cfg.Topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("dashboard: kafka: end offset of %s/%d: %w", s.cfg.Topic, p, err)
		}
		if hwm < newest[p] {
			return fmt.Errorf("%w: the end offset of %s/%d went back from %d to %d", errSession, s.cfg.Topic, p, newest[p], hwm)
		}
		newest[p] = hwm
	}
	return nil
}

// nextOffset is the next offset of partition p that no session read, if
// one read it.
func (s *Server) nextOffset(p int32) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.next[p]
	return n, ok
}

func (s *Server) setNext(p int32, offset int64) {
	s.mu.Lock()
	s.next[p] = offset
	s.mu.Unlock()
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
