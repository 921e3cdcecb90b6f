package app

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

func TestTopicDetail(t *testing.T) {
	d := topicDetail(6, -1, 0, 0)
	if d.NumPartitions != 6 || d.ReplicationFactor != -1 || len(d.ConfigEntries) != 0 {
		t.Errorf("single broker, no retention: %+v", d)
	}
	d = topicDetail(6, 3, 2, time.Hour)
	if d.ReplicationFactor != 3 || *d.ConfigEntries["min.insync.replicas"] != "2" || *d.ConfigEntries["retention.ms"] != "3600000" {
		t.Errorf("cluster with retention: %+v", d)
	}
}

// TestClusterTopicReplication creates EmoStream's topics (topic1, topic2,
// the DLQ) on a 3-broker cluster (KAFKA_CLUSTER_BROKERS): replication 3 and
// min.insync.replicas 2, like the library's internal topics.
func TestClusterTopicReplication(t *testing.T) {
	brokers := kafkatest.ClusterBrokers(t)
	in, out, dlq := kafkatest.UniqueName(t, "topic1"), kafkatest.UniqueName(t, "topic2"), kafkatest.UniqueName(t, "dlq")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ensureTopics(ctx, slog.Default(), brokers, stream.Security{}, 3, time.Hour, in, out, dlq); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{in, out, dlq} {
		if replicas, minISR := kafkatest.TopicReplication(t, brokers, topic); replicas != 3 || minISR != "2" {
			t.Errorf("%s: replication %d, min.insync.replicas %q; want 3, \"2\"", topic, replicas, minISR)
		}
	}
}
