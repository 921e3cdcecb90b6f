// Package kafkatest holds helpers for tests that run against a Kafka broker:
// either the in-process [embedded] broker or a real Apache Kafka named by the
// KAFKA_BROKERS environment variable.
//
// Most integration tests run the same body against both backends:
//
//	func TestRoundTrip(t *testing.T) {
//		for _, b := range kafkatest.Backends() {
//			t.Run(b.Name, func(t *testing.T) {
//				brokers := b.Brokers(t)
//				topic := kafkatest.UniqueName(t, "input")
//				kafkatest.CreateTopic(t, brokers, topic, 3)
//				kafkatest.ProduceStrings(t, brokers, topic, []kafkatest.KV{{Key: "k", Value: "v"}})
//				msgs := kafkatest.ConsumeN(t, brokers, topic, 1, 10*time.Second)
//				...
//			})
//		}
//	}
//
// The real backend is skipped, loudly, when KAFKA_BROKERS is not set, unless
// CI=true, where a missing broker fails the test. `make test` (which runs
// scripts/test.sh) starts a local broker with scripts/kafka-local.sh and sets
// KAFKA_BROKERS; `make kafka-up` starts one for interactive runs.
//
// Tests against a real broker share it with every other test, so topic,
// group and application names must come from [UniqueName].
//
// Apps a test starts can log through [FailureLogger]: silent when the test
// passes, the runtime's debug log when it fails. A test that reads an app's
// log or a child process's output while it runs writes it to a [LogBuffer].
//
// Every helper builds its own sarama configuration ([SaramaConfig]); nothing
// here keeps global client state.
//
// [embedded]: github.com/emostream/emostream/pkg/stream/embedded
package kafkatest
