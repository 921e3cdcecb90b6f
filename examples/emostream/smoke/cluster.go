package main

// The faults scenario on a 3-broker cluster (-cluster 3, `make smoke
// CLUSTER=3`): today's faults (aggregator SIGKILLs and a stop, an API
// SIGKILL; the broker restart becomes a controlled shutdown and restart of
// one broker) plus, under load, a SIGKILL of the broker that leads the most
// partitions of topic1 and topic2 (then its restart) and a SIGSTOP of the
// aggregators' group coordinator for longer than the consumer session
// timeout (then SIGCONT). The checks and the verdict line are the faults
// scenario's. Its cluster has its own state dir and ports.

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/IBM/sarama"
)

// Defaults of -cluster runs (flags given explicitly still win).
const (
	clusterKafkaStateDir = "/tmp/emostream-smoke-cluster-kafka"
	clusterKafkaPort     = 29292 // brokers 29292, 29294, 29296
	clusterKafkaCtrlPort = 29293 // controllers 29293, 29295, 29297
	// clusterPause is how long the paused broker stays stopped: longer
	// than the aggregators' session timeout (6 s by default) and the
	// brokers' broker.session.timeout.ms (9 s), so the cluster fences it
	// and moves its leaders and the group coordinator.
	clusterPause = 15 * time.Second
)

// The cluster faults (values far from faults.go's, which may grow).
const (
	// FaultKillLeader SIGKILLs the broker leading the most partitions of
	// topic1 and topic2 and starts it again after -restart-delay.
	FaultKillLeader FaultKind = 100 + iota
	// FaultPauseBroker SIGSTOPs the aggregators' group coordinator for
	// -broker-pause, then SIGCONTs it.
	FaultPauseBroker
)

func clusterFaultName(k FaultKind) (string, bool) {
	switch k {
	case FaultKillLeader:
		return "SIGKILL partition leader", true
	case FaultPauseBroker:
		return "SIGSTOP broker", true
	}
	return "", false
}

// clusterDefaults applies the -cluster defaults to c; set tells which flags
// were given.
func clusterDefaults(c *Config, set map[string]bool) {
	if c.Cluster <= 1 {
		return
	}
	if !set["kafka-state-dir"] {
		c.KafkaStateDir = clusterKafkaStateDir
	}
	if !set["kafka-port"] {
		c.KafkaPort = clusterKafkaPort
	}
	if !set["kafka-controller-port"] {
		c.KafkaControllerPort = clusterKafkaCtrlPort
	}
}

// validateCluster checks the -cluster flags.
func (c *Config) validateCluster() []string {
	var errs []string
	if c.Cluster < 0 || c.Cluster == 2 || c.Cluster > 9 {
		errs = append(errs, fmt.Sprintf("-cluster must be 0 or 1 (a single broker) or 3 to 9, got %d", c.Cluster))
	}
	if c.Cluster > 1 && c.Scenario != ScenarioFaults {
		errs = append(errs, "-cluster applies to -scenario faults only")
	}
	if c.Cluster > 1 && len(c.Brokers) > 0 {
		errs = append(errs, "-cluster starts its own cluster; it does not go with -brokers")
	}
	if c.LeaderKills < 0 || c.BrokerPauses < 0 {
		errs = append(errs, "fault counts must not be negative")
	}
	if c.BrokerPause <= 0 {
		errs = append(errs, "-broker-pause must be positive")
	}
	return errs
}

// ScheduleCluster spreads the faults of a cluster run over d like
// Schedule: aggregator kills, broker restarts (one broker each), API
// kills, leader kills and broker pauses take turns; aggregators are
// stopped for good last.
func ScheduleCluster(d time.Duration, kills, brokerRestarts, apiKills, leaderKills, pauses, stops int) []Fault {
	order := []FaultKind{FaultKillLeader, FaultKillAggregator, FaultPauseBroker, FaultKillAPI, FaultRestartBroker}
	left := map[FaultKind]int{FaultKillAggregator: kills, FaultRestartBroker: brokerRestarts, FaultKillAPI: apiKills,
		FaultKillLeader: leaderKills, FaultPauseBroker: pauses}
	var kinds []FaultKind
	for added := true; added; {
		added = false
		for _, k := range order {
			if left[k] > 0 {
				left[k]--
				kinds = append(kinds, k)
				added = true
			}
		}
	}
	for range stops {
		kinds = append(kinds, FaultStopAggregator)
	}
	out := make([]Fault, len(kinds))
	for i, k := range kinds {
		out[i] = Fault{At: d * time.Duration(i+1) / time.Duration(len(kinds)+1), Kind: k}
	}
	return out
}

// schedule is the run's fault plan over a generation of length planned.
func (d *driver) schedule(planned time.Duration, brokerRestarts int) []Fault {
	c := d.cfg
	if c.Cluster <= 1 || d.kafka == nil {
		return Schedule(planned, c.Kills, brokerRestarts, c.APIKills, c.Stops)
	}
	return ScheduleCluster(planned, c.Kills, brokerRestarts, c.APIKills, c.LeaderKills, c.BrokerPauses, c.Stops)
}

// clusterFaultText is the cluster faults' part of the verdict line.
func (d *driver) clusterFaultText() string {
	if d.cfg.Cluster <= 1 {
		return ""
	}
	return fmt.Sprintf(", %d-broker cluster: %d leader SIGKILL%s, %d broker SIGSTOP%s of %v",
		d.cfg.Cluster, d.counts[FaultKillLeader], plural(d.counts[FaultKillLeader]),
		d.counts[FaultPauseBroker], plural(d.counts[FaultPauseBroker]), d.cfg.BrokerPause)
}

// injectClusterFault injects one of the cluster faults.
func (d *driver) injectClusterFault(tag string, k FaultKind) {
	switch k {
	case FaultKillLeader:
		node, leads, err := d.busiestLeader()
		if err != nil {
			d.problem("finding the partition leaders: %v", err)
			return
		}
		d.logf("%s SIGKILL broker %d, leader of %d of the partitions of %s and %s; restart in %v", tag, node, leads, d.in, d.outT, d.cfg.RestartDelay)
		start := time.Now()
		if err := d.kafka.Node("kill", node); err != nil {
			d.problem("SIGKILL broker %d: %v", node, err)
			return
		}
		time.Sleep(d.cfg.RestartDelay)
		if err := d.kafka.Node("start", node); err != nil {
			d.problem("restarting broker %d: %v", node, err)
		}
		d.logf("broker %d back after %v", node, time.Since(start).Round(100*time.Millisecond))
	case FaultPauseBroker:
		node, err := d.coordinator()
		if err != nil {
			d.problem("finding the group coordinator: %v", err)
			return
		}
		d.logf("%s SIGSTOP broker %d (coordinator of group %s) for %v", tag, node, d.group, d.cfg.BrokerPause)
		if err := d.kafka.Node("pause", node); err != nil {
			d.problem("SIGSTOP broker %d: %v", node, err)
			return
		}
		time.Sleep(d.cfg.BrokerPause)
		if err := d.kafka.Node("resume", node); err != nil {
			d.problem("SIGCONT broker %d: %v", node, err)
		}
		// Wait until it is back in the cluster before the next fault.
		if err := d.kafka.Node("start", node); err != nil {
			d.problem("broker %d after SIGCONT: %v", node, err)
		}
		d.logf("broker %d resumed", node)
	default:
		d.problem("unknown fault %v", k)
	}
}

// busiestLeader returns the broker (node id) leading the most partitions of
// topic1 and topic2, and how many.
func (d *driver) busiestLeader() (int, int, error) {
	client, err := sarama.NewClient(d.brokers, saramaConfig())
	if err != nil {
		return 0, 0, err
	}
	defer client.Close()
	leads := map[int32]int{}
	for _, t := range []string{d.in, d.outT} {
		parts, err := client.Partitions(t)
		if err != nil {
			return 0, 0, err
		}
		for _, p := range parts {
			b, err := client.Leader(t, p)
			if err != nil {
				return 0, 0, fmt.Errorf("%s/%d: %w", t, p, err)
			}
			leads[b.ID()]++
		}
	}
	ids := make([]int32, 0, len(leads))
	for id := range leads {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		return leads[ids[i]] > leads[ids[j]] || (leads[ids[i]] == leads[ids[j]] && ids[i] < ids[j])
	})
	if len(ids) == 0 {
		return 0, 0, fmt.Errorf("no leaders")
	}
	return int(ids[0]), leads[ids[0]], nil
}

// coordinator returns the node id of the aggregators' group coordinator.
func (d *driver) coordinator() (int, error) {
	client, err := sarama.NewClient(d.brokers, saramaConfig())
	if err != nil {
		return 0, err
	}
	defer client.Close()
	b, err := client.Coordinator(d.group)
	if err != nil {
		return 0, err
	}
	return int(b.ID()), nil
}

// Node runs a per-node subcommand of kafka-local.sh (kill, pause, resume,
// start, stop) on node n.
func (k *LocalKafka) Node(sub string, n int) error {
	_, err := k.run(sub, strconv.Itoa(n))
	return err
}
