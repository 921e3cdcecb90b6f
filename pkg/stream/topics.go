package stream

// Topic administration: checking the source topics' partition counts and
// creating the topics the runtime owns (changelogs, repartition topics, the
// dead-letter topic) at start, with the replication rule of replication.go.

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/IBM/sarama"
)

// prepareTopics checks the source topics, creates the internal ones and
// returns every topic the group consumes.
func (a *App) prepareTopics(sc *sarama.Config) ([]string, error) {
	admin, err := sarama.NewClusterAdmin(a.cfg.brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("stream: admin client: %w", err)
	}
	defer admin.Close()
	// Partition counts, as Kafka Streams co-partitions: a sub-topology has
	// the count of the external topics it reads (which must agree) or,
	// reading internal topics only, the largest count of the
	// sub-topologies writing them; every internal topic takes the count of
	// the sub-topology that reads it. Sub-topologies may feed each other
	// (a foreign-key join's subscription and response topics), so the
	// counts are computed to a fixed point.
	ext := map[int]int32{}
	writers := map[string][]int{} // resolved internal topic -> sub-topologies writing it
	var topics []string
	for _, st := range a.top.subs {
		var n int32
		for _, s := range st.sources {
			topic := resolveTopic(a.cfg.appID, s)
			topics = append(topics, topic)
			if s.internal {
				continue
			}
			parts, err := a.client.Partitions(topic)
			if err != nil {
				return nil, fmt.Errorf("stream: source topic %s: %w", topic, err)
			}
			p := int32(len(parts))
			if n != 0 && p != n {
				return nil, fmt.Errorf("%w: sub-topology %d reads topics with different partition counts (%s has %d, others %d); they must be co-partitioned", ErrInvalidTopology, st.id, topic, p, n)
			}
			n = p
		}
		ext[st.id] = n
		for _, nd := range st.nodes {
			if nd.kind == kindSink && nd.internal {
				topic := resolveTopic(a.cfg.appID, nd)
				writers[topic] = append(writers[topic], st.id)
			}
		}
	}
	parts := maps.Clone(ext)
	for changed := true; changed; {
		changed = false
		for _, st := range a.top.subs {
			if ext[st.id] != 0 {
				continue
			}
			for _, s := range st.sources {
				for _, w := range writers[resolveTopic(a.cfg.appID, s)] {
					if parts[w] > parts[st.id] {
						parts[st.id] = parts[w]
						changed = true
					}
				}
			}
		}
	}
	internalParts := map[string]int32{}
	for _, st := range a.top.subs {
		n := parts[st.id]
		if n == 0 {
			return nil, fmt.Errorf("%w: sub-topology %d reads no topic whose partition count is known", ErrInvalidTopology, st.id)
		}
		a.subParts[st.id] = n
		for _, s := range st.sources {
			if s.internal {
				internalParts[resolveTopic(a.cfg.appID, s)] = n
			}
		}
		for _, store := range st.stores {
			if err := a.ensureTopic(admin, a.top.changelogTopic(a.cfg.appID, store), n, true); err != nil {
				return nil, err
			}
		}
	}
	// An internal topic written but not read keeps its writer's count.
	for topic, ws := range writers {
		if _, ok := internalParts[topic]; !ok {
			for _, w := range ws {
				internalParts[topic] = max(internalParts[topic], parts[w])
			}
		}
	}
	for topic, n := range internalParts {
		if err := a.ensureTopic(admin, topic, n, false); err != nil {
			return nil, err
		}
	}
	if a.cfg.badAction == SendToDeadLetter {
		if err := a.ensureTopic(admin, a.cfg.dlqTopic, a.subParts[0], false); err != nil {
			return nil, err
		}
	}
	if err := a.client.RefreshMetadata(); err != nil {
		return nil, err
	}
	return topics, nil
}

func (a *App) ensureTopic(admin sarama.ClusterAdmin, topic string, partitions int32, compact bool) error {
	rf, minISR := a.cfg.topicReplication(len(a.client.Brokers()))
	detail := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: rf, ConfigEntries: map[string]*string{}}
	replicationConfig(detail.ConfigEntries, minISR)
	if compact {
		c := "compact"
		detail.ConfigEntries["cleanup.policy"] = &c
	}
	err := admin.CreateTopic(topic, detail, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		var te *sarama.TopicError
		if !errors.As(err, &te) || te.Err != sarama.ErrTopicAlreadyExists {
			return fmt.Errorf("stream: create topic %s: %w", topic, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_ = a.client.RefreshMetadata(topic)
		parts, err := a.client.Partitions(topic)
		if err == nil && int32(len(parts)) == partitions {
			// Every partition must have a leader before tasks read or write it.
			for _, p := range parts {
				if _, err = a.client.Leader(topic, p); err != nil {
					break
				}
			}
			if err == nil {
				return nil
			}
		}
		if err == nil && int32(len(parts)) != partitions && len(parts) > 0 {
			return fmt.Errorf("%w: topic %s has %d partitions, the topology needs %d", ErrInvalidTopology, topic, len(parts), partitions)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stream: topic %s not visible after creation: %w", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
