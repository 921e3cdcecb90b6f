package harness

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

func saramaConfig() *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.ClientID = "emostream-bench"
	sc.Net.DialTimeout = 5 * time.Second
	sc.Metadata.AllowAutoTopicCreation = false
	return sc
}

// TopicRecords sums the end offsets (high watermarks) of topic's
// partitions: the records written to it (with transactions, control
// markers too).
func TopicRecords(brokers []string, topic string) (int64, error) {
	if len(brokers) == 0 {
		return 0, ErrNoBrokers
	}
	client, err := sarama.NewClient(brokers, saramaConfig())
	if err != nil {
		return 0, err
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("topic %s: %w", topic, err)
	}
	var sum int64
	for _, p := range parts {
		off, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, fmt.Errorf("topic %s partition %d: %w", topic, p, err)
		}
		sum += off
	}
	return sum, nil
}

// DeleteByPrefix deletes every topic and consumer group whose name starts
// with one of prefixes, and returns how many topics it deleted. Use it only
// with prefixes unique to this run: the broker may be shared.
func DeleteByPrefix(brokers []string, prefixes ...string) (int, error) {
	if len(brokers) == 0 {
		return 0, ErrNoBrokers
	}
	match := func(name string) bool {
		for _, p := range prefixes {
			if p != "" && strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
	admin, err := sarama.NewClusterAdmin(brokers, saramaConfig())
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	var firstErr error
	groups, err := admin.ListConsumerGroups()
	if err != nil {
		firstErr = err
	}
	for g := range groups {
		if match(g) {
			if err := admin.DeleteConsumerGroup(g); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("delete group %s: %w", g, err)
			}
		}
	}
	topics, err := admin.ListTopics()
	if err != nil {
		return 0, err
	}
	n := 0
	for t := range topics {
		if match(t) {
			if err := admin.DeleteTopic(t); err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("delete topic %s: %w", t, err)
				}
				continue
			}
			n++
		}
	}
	return n, firstErr
}

// LocalKafkaPID returns the process id of the broker scripts/kafka-local.sh
// runs, if brokers point at it (its port, 29092 or KAFKA_PORT), for its CPU
// time; 0 otherwise. KAFKA_STATE_DIR (default /tmp/emostream-kafka) is where
// the script keeps its pid file.
func LocalKafkaPID(brokers []string) int {
	dir := os.Getenv("KAFKA_STATE_DIR")
	if dir == "" {
		dir = "/tmp/emostream-kafka"
	}
	raw, err := os.ReadFile(filepath.Join(dir, "kafka.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte("kafka.Kafka")) {
		return 0
	}
	port := os.Getenv("KAFKA_PORT")
	if port == "" {
		port = "29092"
	}
	for _, a := range brokers {
		if strings.HasSuffix(a, ":"+port) {
			return pid
		}
	}
	return 0
}
