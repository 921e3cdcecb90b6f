// Package embedded runs an in-process, Kafka-protocol compatible broker so
// that applications and tests can talk to "Kafka" without a JVM, Docker or a
// network service.
//
// The broker is a single node backed by kfake (github.com/twmb/franz-go's
// fake cluster). It speaks the real wire protocol, so any Kafka client —
// sarama, franz-go, librdkafka — connects to it exactly as it would connect
// to Apache Kafka:
//
//	b, err := embedded.Start()
//	if err != nil {
//		return err
//	}
//	defer b.Close()
//	client, err := sarama.NewClient(b.Addrs(), cfg)
//
// The broker supports what emostream needs from Kafka: automatic topic
// creation on metadata requests, CreateTopics (including topic configs such
// as cleanup.policy=compact), consumer groups, the idempotent producer and
// transactions. With [DataDir] the broker persists its topics, records,
// committed offsets and producer state to disk and reloads them on the next
// [Start] with the same directory; without it everything lives in memory and
// disappears on [Broker.Close].
//
// It is a test and development tool, not a production broker: it has a
// single node (replication factor 1), no replication, no quotas and no
// tiered storage.
package embedded
