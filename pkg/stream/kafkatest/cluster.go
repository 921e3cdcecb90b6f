package kafkatest

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/IBM/sarama"
)

// EnvClusterBrokers names the environment variable with the bootstrap
// addresses of a Kafka cluster of at least three brokers, for the tests of
// replication and broker failover (`BROKERS=3 scripts/kafka-local.sh up`
// prints them: 127.0.0.1:29392,127.0.0.1:29394,127.0.0.1:29396).
const EnvClusterBrokers = "KAFKA_CLUSTER_BROKERS"

// ClusterBrokers returns the brokers listed in KAFKA_CLUSTER_BROKERS, or
// skips the test when it is empty (also under CI=true: CI starts the
// cluster only for the steps that need it).
func ClusterBrokers(t testing.TB) []string {
	t.Helper()
	brokers := splitBrokers(os.Getenv(EnvClusterBrokers))
	if len(brokers) == 0 {
		t.Skip(strings.Join([]string{
			"SKIPPED: 3-broker Kafka test; KAFKA_CLUSTER_BROKERS is not set. Run",
			"  eval \"$(BROKERS=3 scripts/kafka-local.sh up | sed 's/^KAFKA_BROKERS/export KAFKA_CLUSTER_BROKERS/')\"",
			"or `make test-cluster`.",
		}, "\n"))
	}
	return brokers
}

// TopicReplication returns the replication factor of topic (the replicas of
// its first partition) and its min.insync.replicas config ("" when the
// broker does not report it).
func TopicReplication(t testing.TB, brokers []string, topic string) (replicas int, minISR string) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(brokers, SaramaConfig())
	if err != nil {
		t.Fatalf("kafkatest: connecting admin to %v: %v", brokers, err)
	}
	defer func() { _ = admin.Close() }()
	// The broker answering may not have the new topic in its metadata
	// cache yet (UNKNOWN_TOPIC_OR_PARTITION on a cluster, just after the
	// create): ask again until metadataTimeout.
	var meta []*sarama.TopicMetadata
	err = untilMetadata(func() error {
		var err error
		meta, err = admin.DescribeTopics([]string{topic})
		switch {
		case err != nil:
			return err
		case len(meta) != 1:
			return fmt.Errorf("%d topics in the answer, want 1", len(meta))
		case meta[0].Err != sarama.ErrNoError:
			return meta[0].Err
		case len(meta[0].Partitions) == 0:
			return errors.New("no partitions in the answer")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("kafkatest: describing topic %s: %v", topic, err)
	}
	replicas = len(meta[0].Partitions[0].Replicas)
	return replicas, TopicConfig(t, brokers, topic)["min.insync.replicas"]
}

// TopicConfig returns the configuration of topic as the broker describes it
// (its own settings and the defaults it inherits), by name. Like
// [TopicReplication] it asks again until metadataTimeout: the broker that
// answers may not know a topic created a moment ago (in a cluster, its
// metadata cache lags the controller).
func TopicConfig(t testing.TB, brokers []string, topic string) map[string]string {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(brokers, SaramaConfig())
	if err != nil {
		t.Fatalf("kafkatest: connecting admin to %v: %v", brokers, err)
	}
	defer func() { _ = admin.Close() }()
	var res []*sarama.ConfigResourceResult
	err = untilMetadata(func() error {
		var err error
		res, err = admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: topic}}, sarama.DescribeConfigsOptions{})
		switch {
		case err != nil:
			return err
		case len(res) != 1:
			return fmt.Errorf("%d resources in the answer, want 1", len(res))
		case res[0].ErrorCode != sarama.ErrNoError:
			return fmt.Errorf("%w: %s", res[0].ErrorCode, res[0].ErrorMsg)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("kafkatest: describing the config of topic %s: %v", topic, err)
	}
	cfg := make(map[string]string, len(res[0].Configs))
	for _, e := range res[0].Configs {
		cfg[e.Name] = e.Value
	}
	return cfg
}
