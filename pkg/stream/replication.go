package stream

import (
	"fmt"
	"strconv"
)

// Replication of the topics the runtime creates (changelogs, repartition
// topics, the dead-letter topic), the rule Kafka Streams recommends for
// production: on a cluster of at least [ReplicatedClusterSize] brokers,
// replication.factor 3 and min.insync.replicas 2, so a topic survives one
// broker down (stopped, crashed or paused) without losing an acknowledged
// record and without refusing writes (the producer always waits for every
// in-sync replica: acks=all, idempotent). On a smaller cluster the broker's
// default.replication.factor and min.insync.replicas apply (1 and 1 on a
// single broker), as before. [ReplicationFactor] and [MinInSyncReplicas]
// override the rule; topics that exist already are left as they are.
const (
	ReplicatedClusterSize = 3
	// DefaultReplicationFactor and DefaultMinInSyncReplicas are the rule's
	// values on a cluster of at least ReplicatedClusterSize brokers.
	DefaultReplicationFactor = 3
	DefaultMinInSyncReplicas = 2
)

// DefaultReplication returns the rule's replication factor and
// min.insync.replicas for a cluster of brokers brokers: 3 and 2 from three
// brokers on; else -1 (the broker's default.replication.factor) and 0 (the
// broker's min.insync.replicas: leave the topic config unset). Applications
// that create their own topics can follow the same rule with it.
func DefaultReplication(brokers int) (replicationFactor, minInSyncReplicas int16) {
	if brokers >= ReplicatedClusterSize {
		return DefaultReplicationFactor, DefaultMinInSyncReplicas
	}
	return -1, 0
}

// MinInSyncReplicas sets min.insync.replicas of the internal topics the
// application creates (default: 2 when their replication factor is 3 or
// more, else the broker's default). With acks=all, a write succeeds once
// that many replicas have it; with fewer replicas in sync the topic refuses
// writes rather than risk losing them. n must be at least 1 and, with an
// explicit [ReplicationFactor], not above it.
func MinInSyncReplicas(n int16) Opt {
	return optFunc(func(c *config) { c.minISR, c.minISRSet = n, true })
}

// validateReplication checks ReplicationFactor and MinInSyncReplicas.
func (c *config) validateReplication() error {
	switch {
	case c.replication < -1 || (c.replicationSet && c.replication == 0):
		return fmt.Errorf("ReplicationFactor must be at least 1 (or -1: the broker's default), got %d", c.replication)
	case c.minISRSet && c.minISR < 1:
		return fmt.Errorf("MinInSyncReplicas must be at least 1, got %d", c.minISR)
	case c.minISRSet && c.replication > 0 && c.minISR > c.replication:
		return fmt.Errorf("MinInSyncReplicas %d must not exceed ReplicationFactor %d (the topics would refuse every write)", c.minISR, c.replication)
	}
	return nil
}

// topicReplication is the replication factor and min.insync.replicas (0:
// unset) of an internal topic created on a cluster of brokers brokers.
func (c *config) topicReplication(brokers int) (rf, minISR int16) {
	rf, minISR = DefaultReplication(brokers)
	if c.replicationSet {
		rf = c.replication
		minISR = 0
		if rf >= DefaultReplicationFactor {
			minISR = DefaultMinInSyncReplicas
		}
	}
	if c.minISRSet {
		minISR = c.minISR
	}
	return rf, minISR
}

// replicationConfig adds min.insync.replicas to a new topic's config
// entries when minISR is set.
func replicationConfig(entries map[string]*string, minISR int16) {
	if minISR > 0 {
		v := strconv.Itoa(int(minISR))
		entries["min.insync.replicas"] = &v
	}
}
