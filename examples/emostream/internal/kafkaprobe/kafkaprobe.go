// Package kafkaprobe tells a component's /healthz whether Kafka serves the
// topics it works on. The aggregator's own consumer group notices a broker
// outage only in its logs and retries; the probe asks the cluster every
// interval, so /healthz answers 503 with the reason while Kafka is away and
// 200 again once it is back.
package kafkaprobe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// DefaultInterval is how often [Probe.Run] asks Kafka.
const DefaultInterval = time.Second

// ErrNotChecked is [Probe.Ready]'s answer before the first check.
var ErrNotChecked = errors.New("kafka: not checked yet")

// Probe checks that Kafka serves a set of topics: each exists and every
// partition has a leader.
type Probe struct {
	brokers   []string
	topics    []string
	configure func(*sarama.Config)
	interval  time.Duration

	mu  sync.Mutex
	err error
}

// New returns a probe of topics on brokers. configure, if not nil, adjusts
// the client's configuration (TLS, SASL).
func New(brokers, topics []string, configure func(*sarama.Config)) *Probe {
	return &Probe{brokers: brokers, topics: topics, configure: configure, interval: DefaultInterval, err: ErrNotChecked}
}

// Ready returns nil when the last check succeeded, and its error otherwise.
func (p *Probe) Ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *Probe) set(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

// Run checks every interval until ctx ends. It returns nil then: a failed
// check is an answer for /healthz, not an error of the component.
func (p *Probe) Run(ctx context.Context) error {
	var client sarama.Client
	defer func() {
		if client != nil {
			_ = client.Close()
		}
	}()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		if client == nil {
			conf := sarama.NewConfig()
			conf.ClientID = "emostream-health"
			conf.Net.DialTimeout = 3 * time.Second
			conf.Metadata.AllowAutoTopicCreation = false
			conf.Metadata.Retry.Max = 0
			if p.configure != nil {
				p.configure(conf)
			}
			c, err := sarama.NewClient(p.brokers, conf)
			if err != nil {
				p.set(oneLine(fmt.Errorf("kafka: connecting to %v: %w", p.brokers, err)))
			} else {
				client = c
			}
		}
		if client != nil {
			p.set(oneLine(check(client, p.topics)))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// check asks a broker for the topics' metadata.
func check(client sarama.Client, topics []string) error {
	if err := client.RefreshMetadata(topics...); err != nil {
		return fmt.Errorf("kafka: metadata of %v: %w", topics, err)
	}
	for _, topic := range topics {
		parts, err := client.Partitions(topic)
		if err == nil && len(parts) == 0 {
			err = errors.New("no partitions")
		}
		if err != nil {
			return fmt.Errorf("kafka: topic %q: %w", topic, err)
		}
		for _, part := range parts {
			if _, err := client.Leader(topic, part); err != nil {
				return fmt.Errorf("kafka: leader of %s/%d: %w", topic, part, err)
			}
		}
	}
	return nil
}

// lineError is an error whose message is kept on one line for /healthz's
// JSON (sarama joins errors with newlines).
type lineError struct{ err error }

func (e lineError) Error() string { return strings.ReplaceAll(e.err.Error(), "\n", "; ") }
func (e lineError) Unwrap() error { return e.err }

func oneLine(err error) error {
	if err == nil || !strings.Contains(err.Error(), "\n") {
		return err
	}
	return lineError{err}
}
