package stream_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestClusterInternalTopicReplication runs a word count (a repartition
// topic, a changelog) with a dead-letter topic on a 3-broker cluster
// (KAFKA_CLUSTER_BROKERS) and checks that the runtime created its topics
// with replication 3 and min.insync.replicas 2 by default, and with what
// ReplicationFactor and MinInSyncReplicas say otherwise.
func TestClusterInternalTopicReplication(t *testing.T) {
	brokers := kafkatest.ClusterBrokers(t)
	for _, tc := range []struct {
		name     string
		opts     []stream.Opt
		replicas int
		minISR   string
	}{
		{"default", nil, 3, "2"},
		{"options", []stream.Opt{stream.ReplicationFactor(2), stream.MinInSyncReplicas(1)}, 2, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
			dlq, appID := kafkatest.UniqueName(t, "dlq"), kafkatest.UniqueName(t, "app")
			kafkatest.CreateTopic(t, brokers, in, 2)
			kafkatest.CreateTopic(t, brokers, out, 2)
			opts := append([]stream.Opt{stream.Brokers(brokers...), stream.ApplicationID(appID),
				stream.CommitInterval(200 * time.Millisecond), stream.OnDeserializationError(stream.SendToDeadLetter, dlq)}, tc.opts...)
			app, err := stream.NewApp(wordCountTopology(in, out), opts...)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- app.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			kafkatest.ProduceStrings(t, brokers, in, []kafkatest.KV{{Key: "k", Value: "a"}, {Key: "k", Value: "b"}})
			kafkatest.ConsumeN(t, brokers, out, 2, 60*time.Second)

			admin, err := sarama.NewClusterAdmin(brokers, kafkatest.SaramaConfig())
			if err != nil {
				t.Fatal(err)
			}
			all, err := admin.ListTopics()
			_ = admin.Close()
			if err != nil {
				t.Fatal(err)
			}
			created := []string{dlq}
			for name := range all {
				if strings.HasPrefix(name, appID+"-") {
					created = append(created, name)
				}
			}
			if len(created) != 3 { // the DLQ, a repartition topic and a changelog
				t.Fatalf("topics created by the app: %v, want the DLQ, a repartition topic and a changelog", created)
			}
			for _, topic := range created {
				replicas, minISR := kafkatest.TopicReplication(t, brokers, topic)
				if replicas != tc.replicas || minISR != tc.minISR {
					t.Errorf("%s: replication %d, min.insync.replicas %q; want %d, %q", topic, replicas, minISR, tc.replicas, tc.minISR)
				}
			}
		})
	}
}
