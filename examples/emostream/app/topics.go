package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/pkg/stream"
)

// connectTimeout bounds how long a subcommand waits for Kafka at start:
// in a compose file the broker may come up after us.
const connectTimeout = 60 * time.Second

func saramaConfig(clientID string, configure func(*sarama.Config)) *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.ClientID = clientID
	sc.Net.DialTimeout = 5 * time.Second
	sc.Metadata.AllowAutoTopicCreation = false
	if configure != nil {
		configure(sc)
	}
	return sc
}

// ensureTopics creates the topics that do not exist yet with the given
// partitions and the library's replication rule (stream.DefaultReplication):
// replication 3 and min.insync.replicas 2 on a cluster of at least three
// brokers, else the cluster's defaults. A topic that
// exists with another partition count is left alone with a warning:
// changing it would move keys between partitions. retention, when not 0,
// is the retention.ms of the topics created (existing topics keep theirs).
// Connection failures are
// retried for connectTimeout, except those no retry can cure: a rejected
// login or an untrusted certificate.
func ensureTopics(ctx context.Context, log *slog.Logger, brokers []string, sec stream.Security, partitions int32, retention time.Duration, topics ...string) error {
	return createTopics(ctx, log, brokers, sec, partitions, retention, false, topics...)
}

// ensureTableTopics is ensureTopics for topics read as tables (an
// aggregation's aggregation.TableTopics): created with cleanup.policy
// compact and the cluster's retention.
func ensureTableTopics(ctx context.Context, log *slog.Logger, brokers []string, sec stream.Security, partitions int32, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	return createTopics(ctx, log, brokers, sec, partitions, 0, true, topics...)
}

// createTopics is ensureTopics, the topics compacted when compact is set.
func createTopics(ctx context.Context, log *slog.Logger, brokers []string, sec stream.Security, partitions int32, retention time.Duration, compact bool, topics ...string) error {
	var admin sarama.ClusterAdmin
	deadline := time.Now().Add(connectTimeout)
	for {
		var err error
		admin, err = newAdmin(ctx, brokers, sec)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if fatal := connectError(err, sec); fatal != nil {
			return fmt.Errorf("connecting to Kafka at %v: %w", brokers, fatal)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connecting to Kafka at %v: %w%s", brokers, err, connectHint(sec))
		}
		log.Warn("waiting for Kafka", "brokers", brokers, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	defer admin.Close()

	nodes, _, err := admin.DescribeCluster()
	if err != nil {
		return fmt.Errorf("describing the Kafka cluster: %w", err)
	}
	rf, minISR := stream.DefaultReplication(len(nodes))
	for _, topic := range topics {
		detail := topicDetail(partitions, rf, minISR, retention)
		if compact {
			policy := "compact"
			detail.ConfigEntries["cleanup.policy"] = &policy
		}
		err := admin.CreateTopic(topic, detail, false)
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
			for _, pm := range m.Partitions {
				if pm.Err == sarama.ErrLeaderNotAvailable || pm.Leader < 0 {
					pending = fmt.Errorf("topic %s partition %d: %w", m.Name, pm.ID, sarama.ErrLeaderNotAvailable)
				}
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

// topicDetail is how ensureTopics creates a topic: rf replicas (-1: the
// cluster's default), min.insync.replicas minISR (0: the cluster's default)
// and retention.ms retention (0: the cluster's default).
func topicDetail(partitions int32, rf, minISR int16, retention time.Duration) *sarama.TopicDetail {
	detail := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: rf, ConfigEntries: map[string]*string{}}
	if retention > 0 {
		ms := strconv.FormatInt(retention.Milliseconds(), 10)
		detail.ConfigEntries["retention.ms"] = &ms
	}
	if minISR > 0 {
		n := strconv.Itoa(int(minISR))
		detail.ConfigEntries["min.insync.replicas"] = &n
	}
	return detail
}

// newAdmin connects an admin client, giving up when ctx ends: a broker that
// accepts the connection but never answers (a TLS handshake to a plaintext
// port, say) must not delay Ctrl-C until sarama's timeouts.
func newAdmin(ctx context.Context, brokers []string, sec stream.Security) (sarama.ClusterAdmin, error) {
	sc := saramaConfig("emostream-admin", func(sc *sarama.Config) { _ = sec.Apply(sc) })
	sc.Net.ReadTimeout = 10 * time.Second // admin requests are small and quick
	type result struct {
		admin sarama.ClusterAdmin
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		a, err := sarama.NewClusterAdmin(brokers, sc)
		ch <- result{a, err}
	}()
	select {
	case r := <-ch:
		return r.admin, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.admin != nil {
				_ = r.admin.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// connectError explains a connection failure that retrying cannot cure, or
// returns nil for one worth retrying. Sarama's errors carry no password,
// and neither do these.
func connectError(err error, sec stream.Security) error {
	var (
		unknownCA  x509.UnknownAuthorityError
		hostname   x509.HostnameError
		invalid    x509.CertificateInvalidError
		notTLS     tls.RecordHeaderError
		verifyFail *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		//lint:ignore ST1005 the message starts with a proper noun; it is the last line a user sees
		return fmt.Errorf("Kafka rejected the login (%s): check --kafka-sasl-mechanism, --kafka-sasl-user and the password: %w", sec.SASL, err)
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verifyFail):
		return fmt.Errorf("the broker's TLS certificate is not trusted (see --kafka-tls-ca): %w", err)
	case errors.As(err, &notTLS):
		return fmt.Errorf("the broker does not speak TLS on that address (check --kafka-tls and --brokers): %w", err)
	}
	return nil
}

// connectHint is added to a connection error when security is on: some
// brokers close the connection on a failed login instead of answering with
// an error, and a TLS client talking to a plaintext port just times out.
func connectHint(sec stream.Security) string {
	var hints []string
	if sec.SASL.Mechanism != "" {
		hints = append(hints, fmt.Sprintf("logging in with %s, a broker may close the connection on a wrong mechanism, user or password", sec.SASL))
	}
	if sec.TLS != nil {
		hints = append(hints, "with --kafka-tls, a plaintext listener makes the handshake time out")
	}
	if len(hints) == 0 {
		return ""
	}
	return " (" + strings.Join(hints, "; ") + ")"
}
