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
//
// # Kafka's own tools
//
// Apache Kafka's command-line tools work against the broker:
// kafka-topics (--list, --describe), kafka-consumer-groups (--list,
// --describe with lag), kafka-console-consumer, kafka-console-producer and
// GetOffsetShell (kafka-get-offsets). scripts/kafka-tools.sh runs the 4.4
// tools without a Kafka download; kcat and other librdkafka tools work too.
//
// For the Java tools the broker carries a small compatibility shim
// (compat.go) over kfake, the newest of which (the version in go.mod, checked
// against the Go module proxy) answers two requests in a way Kafka's 4.x
// admin client rejects:
//
//   - DescribeTopicPartitions: kfake sends the EligibleLeaderReplicas and
//     LastKnownElr arrays as null; Apache Kafka always sends them (empty
//     when there are none), and the Java admin client's describeTopics —
//     behind kafka-topics --describe, kafka-consumer-groups --describe and
//     GetOffsetShell — fails with a NullPointerException on null. The shim
//     wraps each client connection, notes which correlation ids belong to
//     DescribeTopicPartitions requests, and rewrites just those responses
//     with empty arrays; every other request and response passes through
//     unchanged.
//   - ListGroups: the Java client filters group types by their capitalised
//     names ("Classic", "Consumer") and Apache Kafka matches them
//     case-insensitively; kfake compares them exactly, so
//     kafka-consumer-groups --list printed nothing. The same connection
//     wrapper lower-cases the filter in those requests before kfake reads
//     them.
//
// TestKafkaToolsAgainstEmbeddedBroker runs the real tools against the
// broker (in CI; it skips locally without java), and
// TestBrokerAnswersJavaAdminRequests checks both fixes on the wire without a
// JVM. Drop the shim once kfake answers these requests like Kafka does:
// both tests say whether it still is needed.
package embedded
