package kafkatest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/pkg/stream/embedded"
	"github.com/emostream/emostream/pkg/stream/internal/stacks"
)

// EnvBrokers is the environment variable naming the real Kafka brokers, as a
// comma-separated list of host:port.
const EnvBrokers = "KAFKA_BROKERS"

// SaramaVersion is the Kafka protocol version the helpers configure sarama
// with. Both the embedded broker and Apache Kafka 4.x accept it.
var SaramaVersion = sarama.V4_0_0_0

// metadataTimeout bounds how long CreateTopic waits for a new topic to show
// up with leaders in metadata.
const metadataTimeout = 30 * time.Second

// SaramaConfig returns a new sarama configuration suited to tests: protocol
// [SaramaVersion], an idempotent producer that waits for all replicas and
// reports successes, consumers that start from the oldest offset and read
// only committed records. Each call returns a fresh value that the caller may
// change freely.
func SaramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = SaramaVersion
	cfg.ClientID = "emostream-kafkatest"
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.Return.Errors = true
	// Short fetch waits: tests measure delivery latency.
	cfg.Consumer.MaxWaitTime = 20 * time.Millisecond
	cfg.Metadata.Retry.Max = 10
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	return cfg
}

// RealBrokers returns the brokers listed in KAFKA_BROKERS. When the variable
// is empty the test is skipped with a loud message, except when CI=true,
// where it fails: CI must exercise a real Kafka. It also fails the test when
// the first listed broker does not accept TCP connections.
func RealBrokers(t testing.TB) []string {
	t.Helper()
	brokers := splitBrokers(os.Getenv(EnvBrokers))
	if len(brokers) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("KAFKA_BROKERS not set: CI requires a real Kafka broker")
			return nil
		}
		t.Skip(strings.Join([]string{
			"",
			"************************************************************************",
			"* SKIPPED: real-Kafka test. KAFKA_BROKERS is not set.                  *",
			"* Run `make test` (starts a local Kafka via scripts/kafka-local.sh),   *",
			"* or `make kafka-up` and then                                          *",
			"*   KAFKA_BROKERS=127.0.0.1:29092 go test ./...                        *",
			"************************************************************************",
		}, "\n"))
		return nil
	}
	conn, err := net.DialTimeout("tcp", brokers[0], 5*time.Second)
	if err != nil {
		t.Fatalf("KAFKA_BROKERS=%s but broker %s is unreachable: %v (is it running? try `make kafka-up`)",
			os.Getenv(EnvBrokers), brokers[0], err)
		return nil
	}
	_ = conn.Close()
	return brokers
}

func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// EmbeddedBrokers starts a fresh in-process broker for this test, stops it
// when the test ends, and returns its bootstrap addresses.
func EmbeddedBrokers(t testing.TB) []string {
	t.Helper()
	b, err := embedded.Start()
	if err != nil {
		t.Fatalf("starting embedded broker: %v", err)
		return nil
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.Addrs()
}

// Backend is a kind of broker a test can run against.
type Backend struct {
	// Name identifies the backend in subtest names: "embedded" or "real".
	Name string
	// Brokers returns bootstrap addresses for the test, skipping or failing
	// it when the backend is unavailable (see [RealBrokers]).
	Brokers func(testing.TB) []string
}

// Backends returns the in-process embedded broker and the real broker from
// KAFKA_BROKERS, in that order.
func Backends() []Backend {
	return []Backend{
		{Name: "embedded", Brokers: EmbeddedBrokers},
		{Name: "real", Brokers: RealBrokers},
	}
}

var (
	nameCounter atomic.Uint64
	runID       = randomHex(3)
	unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9-]+`)
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// UniqueName returns a name for a topic, group or application that no other
// test, run or process sharing the broker uses. It is built from prefix, the
// test name and random characters, contains only [a-zA-Z0-9-] (valid for
// topics and group ids) and is at most 120 characters long.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	clean := func(s string, max int) string {
		s = strings.Trim(unsafeChars.ReplaceAllString(s, "-"), "-")
		if len(s) > max {
			s = s[len(s)-max:] // the end of a test name is its most specific part
		}
		return s
	}
	parts := []string{}
	if p := clean(prefix, 40); p != "" {
		parts = append(parts, p)
	}
	if n := clean(t.Name(), 50); n != "" {
		parts = append(parts, n)
	}
	parts = append(parts, fmt.Sprintf("%s%d%s", runID, nameCounter.Add(1), randomHex(2)))
	return strings.Join(parts, "-")
}

// CreateTopic creates topic name with the given number of partitions and
// replication factor 1, and waits until every partition has a leader in
// metadata. It fails the test on any error, including an existing topic.
func CreateTopic(t testing.TB, brokers []string, name string, partitions int32) {
	t.Helper()
	CreateTopicWithConfig(t, brokers, name, partitions, nil)
}

// CreateTopicWithConfig is [CreateTopic] with topic configs, for example
// {"cleanup.policy": "compact"}.
func CreateTopicWithConfig(t testing.TB, brokers []string, name string, partitions int32, config map[string]string) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(brokers, SaramaConfig())
	if err != nil {
		t.Fatalf("kafkatest: connecting admin to %v: %v", brokers, err)
		return
	}
	defer func() { _ = admin.Close() }()

	detail := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}
	if len(config) > 0 {
		detail.ConfigEntries = make(map[string]*string, len(config))
		for k, v := range config {
			detail.ConfigEntries[k] = &v
		}
	}
	if err := admin.CreateTopic(name, detail, false); err != nil {
		t.Fatalf("kafkatest: creating topic %q: %v", name, err)
		return
	}
	if err := waitForTopic(brokers, name, partitions); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
}

// waitForTopic polls metadata until topic has want partitions, each with a
// leader.
func waitForTopic(brokers []string, topic string, want int32) error {
	cfg := SaramaConfig()
	cfg.Metadata.AllowAutoTopicCreation = false
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return fmt.Errorf("connecting to %v: %w", brokers, err)
	}
	defer func() { _ = client.Close() }()

	if err := untilMetadata(func() error { return topicReady(client, topic, want) }); err != nil {
		return fmt.Errorf("topic %q not ready after %v: %w", topic, metadataTimeout, err)
	}
	return nil
}

// untilMetadata calls try every 100 ms until it returns nil or an error
// wrapped in permanentError, or until metadataTimeout has passed, and
// returns its last error (unwrapped). A broker may not yet know a topic
// created a moment ago, or its partitions' leaders (on a cluster, a
// broker's metadata cache lags the controller): the helpers that ask about
// one ask again through this.
func untilMetadata(try func() error) error {
	deadline := time.Now().Add(metadataTimeout)
	for {
		err := try()
		var perm permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// permanentError makes untilMetadata return err at once.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }

func topicReady(client sarama.Client, topic string, want int32) error {
	if err := client.RefreshMetadata(topic); err != nil {
		return err
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		return err
	}
	if int32(len(parts)) != want {
		return fmt.Errorf("%d partitions, want %d", len(parts), want)
	}
	for _, p := range parts {
		if _, err := client.Leader(topic, p); err != nil {
			return fmt.Errorf("partition %d: %w", p, err)
		}
	}
	return nil
}

// KV is a record to produce with [ProduceStrings].
type KV struct {
	// Key is the record key; an empty Key is sent as a null key.
	Key string
	// Value is the record value.
	Value string
	// Tombstone sends a null value (a delete marker in compacted topics)
	// instead of Value.
	Tombstone bool
	// Headers are added to the record, in key order.
	Headers map[string]string
	// Partition, if set, sends the record to that partition instead of the
	// one sarama's default partitioner picks from the key.
	Partition *int32
	// Timestamp, if not zero, is the record's timestamp (else the time it
	// is sent).
	Timestamp time.Time
}

// ProduceStrings sends recs to topic, in order, with an idempotent producer
// that waits for all in-sync replicas, and fails the test if any send fails.
// Records with equal keys land in the same partition.
func ProduceStrings(t testing.TB, brokers []string, topic string, recs []KV) {
	t.Helper()
	if len(recs) == 0 {
		return
	}
	cfg := SaramaConfig()
	manual := slices.ContainsFunc(recs, func(r KV) bool { return r.Partition != nil })
	var (
		hash     sarama.Partitioner
		numParts int32
	)
	if manual {
		// Records without a Partition are placed as the default (hash)
		// partitioner would place them.
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
		hash = sarama.NewHashPartitioner(topic)
		numParts = partitionCount(t, brokers, topic)
	}
	producer, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		t.Fatalf("kafkatest: creating producer for %v: %v", brokers, err)
		return
	}
	defer func() { _ = producer.Close() }()

	msgs := make([]*sarama.ProducerMessage, 0, len(recs))
	for _, r := range recs {
		m := &sarama.ProducerMessage{Topic: topic, Timestamp: r.Timestamp}
		if r.Key != "" {
			m.Key = sarama.StringEncoder(r.Key)
		}
		if !r.Tombstone {
			m.Value = sarama.StringEncoder(r.Value)
		}
		for _, k := range sortedKeys(r.Headers) {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(r.Headers[k])})
		}
		switch {
		case r.Partition != nil:
			m.Partition = *r.Partition
		case manual:
			p, err := hash.Partition(m, numParts)
			if err != nil {
				t.Fatalf("kafkatest: partitioning: %v", err)
				return
			}
			m.Partition = p
		}
		msgs = append(msgs, m)
	}
	if err := producer.SendMessages(msgs); err != nil {
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) && len(perrs) > 0 {
			t.Fatalf("kafkatest: producing %d records to %q: %d failed, first: %v", len(msgs), topic, len(perrs), perrs[0].Err)
			return
		}
		t.Fatalf("kafkatest: producing %d records to %q: %v", len(msgs), topic, err)
	}
}

func partitionCount(t testing.TB, brokers []string, topic string) int32 {
	t.Helper()
	client, err := sarama.NewClient(brokers, SaramaConfig())
	if err != nil {
		t.Fatalf("kafkatest: connecting to %v: %v", brokers, err)
		return 0
	}
	defer func() { _ = client.Close() }()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("kafkatest: partitions of %q: %v", topic, err)
		return 0
	}
	return int32(len(parts))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Message is a record read by [ConsumeN].
type Message struct {
	// Topic is the record's topic.
	Topic string
	// Partition is the record's partition.
	Partition int32
	// Offset is the record's offset in its partition.
	Offset int64
	// Key is the record key ("" for a null key).
	Key string
	// Value is the record value ("" for a null value; see Tombstone).
	Value string
	// Tombstone reports a null value.
	Tombstone bool
	// Headers holds the record headers; for repeated keys the last wins.
	Headers map[string]string
	// Timestamp is the record's timestamp.
	Timestamp time.Time
}

// ConsumeN reads topic from the oldest offset of every partition, with
// read_committed isolation, until it has n records, and returns them sorted
// by partition and offset. It fails the test, listing what it got, if fewer
// than n records arrive within timeout. It reads no more than n records.
func ConsumeN(t testing.TB, brokers []string, topic string, n int, timeout time.Duration) []Message {
	t.Helper()
	msgs, err := consume(brokers, topic, n, timeout)
	if err == nil && len(msgs) < n && n > 0 {
		// Seen on a loaded CI machine: a fresh consumer got none of the
		// records a topic's end offsets showed. Read again with a new client
		// (from the oldest offsets: nothing is counted twice) before failing.
		t.Logf("kafkatest: consumed %d of %d records from %q within %v; reading again with a new consumer", len(msgs), n, topic, timeout)
		msgs, err = consume(brokers, topic, n, timeout)
	}
	if err != nil {
		t.Fatalf("kafkatest: consuming %q: %v", topic, err)
		return nil
	}
	if len(msgs) < n {
		var b strings.Builder
		for _, m := range msgs {
			fmt.Fprintf(&b, "\n  p%d@%d %q=%q", m.Partition, m.Offset, m.Key, m.Value)
		}
		t.Fatalf("kafkatest: consumed %d of %d records from %q within %v:%s\n%s", len(msgs), n, topic, timeout, b.String(), clientGoroutines())
		return nil
	}
	return msgs
}

// consumePartition starts consuming p from the oldest offset. A partition
// just created may not have settled on its leader yet ("not the leader",
// "leader not available"): those are retried until metadataTimeout.
func consumePartition(consumer sarama.Consumer, topic string, p int32) (sarama.PartitionConsumer, error) {
	var pc sarama.PartitionConsumer
	err := untilMetadata(func() error {
		var err error
		pc, err = consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		retriable := errors.Is(err, sarama.ErrNotLeaderForPartition) || errors.Is(err, sarama.ErrLeaderNotAvailable) ||
			errors.Is(err, sarama.ErrUnknownTopicOrPartition) || errors.Is(err, sarama.ErrNotCoordinatorForConsumer)
		if err != nil && !retriable {
			return permanentError{err}
		}
		return err
	})
	return pc, err
}

func consume(brokers []string, topic string, n int, timeout time.Duration) ([]Message, error) {
	consumer, err := sarama.NewConsumer(brokers, SaramaConfig())
	if err != nil {
		return nil, fmt.Errorf("creating consumer for %v: %w", brokers, err)
	}
	defer func() { _ = consumer.Close() }()

	parts, err := consumer.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("listing partitions: %w", err)
	}

	var (
		mu      sync.Mutex
		msgs    []Message
		lastErr error
		done    = make(chan struct{})
		once    sync.Once
		wg      sync.WaitGroup
		pcs     []sarama.PartitionConsumer
	)
	defer func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
		wg.Wait()
	}()
	for _, p := range parts {
		pc, err := consumePartition(consumer, topic, p)
		if err != nil {
			return nil, fmt.Errorf("consuming partition %d: %w", p, err)
		}
		pcs = append(pcs, pc)
		wg.Add(2)
		go func() {
			defer wg.Done()
			// Sarama retries most errors itself; remember the last
			// one to explain a timeout.
			for cerr := range pc.Errors() {
				mu.Lock()
				lastErr = cerr
				mu.Unlock()
			}
		}()
		go func() {
			defer wg.Done()
			for m := range pc.Messages() {
				mu.Lock()
				if len(msgs) < n {
					msgs = append(msgs, toMessage(m))
				}
				full := len(msgs) >= n
				mu.Unlock()
				if full {
					once.Do(func() { close(done) })
				}
			}
		}()
	}

	if n > 0 {
		timer := time.NewTimer(timeout)
		select {
		case <-done:
		case <-timer.C:
		}
		timer.Stop()
	}
	mu.Lock()
	out := slices.Clone(msgs)
	err = lastErr
	mu.Unlock()
	slices.SortFunc(out, func(a, b Message) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	if len(out) < n && err != nil {
		return out, fmt.Errorf("got %d of %d records; last consumer error: %w", len(out), n, err)
	}
	return out, nil
}

func toMessage(m *sarama.ConsumerMessage) Message {
	msg := Message{
		Topic:     m.Topic,
		Partition: m.Partition,
		Offset:    m.Offset,
		Key:       string(m.Key),
		Value:     string(m.Value),
		Tombstone: m.Value == nil,
		Timestamp: m.Timestamp,
	}
	if len(m.Headers) > 0 {
		msg.Headers = make(map[string]string, len(m.Headers))
		for _, h := range m.Headers {
			msg.Headers[string(h.Key)] = string(h.Value)
		}
	}
	return msg
}

// clientGoroutines returns the stacks of this process's goroutines that
// run Kafka client or stream runtime code: where an app that wrote
// nothing is waiting, printed when a test waits in vain for its output.
func clientGoroutines() string {
	return "kafkatest: goroutines in Kafka clients and the stream runtime:\n" + stacks.Kafka("kafkatest.clientGoroutines", 200<<10)
}
