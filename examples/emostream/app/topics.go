package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
)

// connectTimeout bounds how long a subcommand waits for Kafka at start:
// in a compose file the broker may come up after us.
const connectTimeout = 60 * time.Second

func saramaConfig(clientID string) *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.ClientID = clientID
	sc.Net.DialTimeout = 5 * time.Second
	sc.Metadata.AllowAutoTopicCreation = false
	return sc
}

// ensureTopics creates the topics that do not exist yet with the given
// partitions and the cluster's default replication factor. A topic that
// exists with another partition count is left alone with a warning:
// changing it would move keys between partitions.
func ensureTopics(ctx context.Context, log *slog.Logger, brokers []string, partitions int32, topics ...string) error {
	var admin sarama.ClusterAdmin
	deadline := time.Now().Add(connectTimeout)
	for {
		var err error
		admin, err = sarama.NewClusterAdmin(brokers, saramaConfig("emostream-admin"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connecting to Kafka at %v: %w", brokers, err)
		}
		log.Warn("waiting for Kafka", "brokers", brokers, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	defer admin.Close()

	for _, topic := range topics {
		err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: -1}, false)
		var te *sarama.TopicError
		switch {
		case err == nil:
			log.Info("created topic", "topic", topic, "partitions", partitions)
		case errors.Is(err, sarama.ErrTopicAlreadyExists) || (errors.As(err, &te) && te.Err == sarama.ErrTopicAlreadyExists):
		default:
			return fmt.Errorf("creating topic %s: %w", topic, err)
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	// A created topic reaches the brokers' metadata caches a moment after
	// CreateTopics returns (Kafka propagates it asynchronously), so retry
	// "unknown topic" and "leader not available" for a while.
	for {
		meta, err := admin.DescribeTopics(topics)
		if err != nil {
			return fmt.Errorf("describing topics: %w", err)
		}
		var pending error
		for _, m := range meta {
			switch {
			case m.Err == sarama.ErrUnknownTopicOrPartition || m.Err == sarama.ErrLeaderNotAvailable:
				pending = fmt.Errorf("topic %s: %w", m.Name, m.Err)
			case m.Err != sarama.ErrNoError:
				return fmt.Errorf("topic %s: %w", m.Name, m.Err)
			}
		}
		if pending == nil {
			for _, m := range meta {
				if n := int32(len(m.Partitions)); n != partitions {
					log.Warn("topic exists with another partition count; using it as it is", "topic", m.Name, "partitions", n, "flag", partitions)
				}
			}
			return nil
		}
		if time.Now().After(deadline) {
			return pending
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
