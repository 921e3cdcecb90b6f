package dashboard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// retrySessions runs session until ctx ends, again after every failure
// with a backoff that doubles from minBackoff to maxBackoff and starts over
// after a session that lasted steadyAfter. ended sees each failure (first
// is true for the first session's) before what is logged as failed.
func (s *Server) retrySessions(ctx context.Context, failed string, session func(context.Context) error, ended func(first bool, err error)) {
	backoff := minBackoff
	for first := true; ; first = false {
		began := time.Now()
		err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		ended(first, err)
		if time.Since(began) > steadyAfter {
			backoff = minBackoff
		}
		s.log.Warn(failed, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// kafkaSession is one consumer session's client, consumer and partition
// consumers; close releases them.
type kafkaSession struct {
	client   sarama.Client
	consumer sarama.Consumer
	cancel   context.CancelCauseFunc
	wg       sync.WaitGroup
	pcs      []sarama.PartitionConsumer
}

// openSession connects to the brokers. The context it returns ends when
// ctx does or when a partition stops (its cause then wraps errSession).
func (s *Server) openSession(ctx context.Context) (*kafkaSession, context.Context, error) {
	client, err := sarama.NewClient(s.cfg.Brokers, s.saramaConfig())
	if err != nil {
		return nil, nil, fmt.Errorf("dashboard: kafka: connecting to %v: %w", s.cfg.Brokers, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("dashboard: kafka: consumer: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	return &kafkaSession{client: client, consumer: consumer, cancel: cancel}, ctx, nil
}

// read consumes topic/p from offset start: receive gets every message and
// failed every error sarama reports (it retries those by itself). When
// sarama stops the partition (offset out of range) the session's context
// ends with errSession, so that the next session resets it.
func (k *kafkaSession) read(topic string, p int32, start int64, receive func(*sarama.ConsumerMessage), failed func(*sarama.ConsumerError)) error {
	pc, err := k.consumer.ConsumePartition(topic, p, start)
	if err != nil {
		return fmt.Errorf("dashboard: kafka: consuming %s/%d from %d: %w", topic, p, start, err)
	}
	k.pcs = append(k.pcs, pc)
	k.wg.Add(2)
	go func() {
		defer k.wg.Done()
		for m := range pc.Messages() {
			receive(m)
		}
		k.cancel(fmt.Errorf("%w: %s/%d stopped", errSession, topic, p))
	}()
	go func() {
		defer k.wg.Done()
		for err := range pc.Errors() {
			failed(err)
		}
	}()
	return nil
}

// close drains and closes the partition consumers (their channels must be
// drained until they close), then the consumer and the client.
func (k *kafkaSession) close() {
	for _, pc := range k.pcs {
		pc.AsyncClose()
	}
	k.wg.Wait()
	k.cancel(nil)
	k.consumer.Close()
	k.client.Close()
}

// sessionEnd is what a session whose context ctx ended returns: nil when
// it was canceled from outside, else why it ended.
func sessionEnd(ctx context.Context) error {
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
