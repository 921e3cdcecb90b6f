package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestScheduleCluster(t *testing.T) {
	plan := ScheduleCluster(80*time.Second, 3, 1, 1, 1, 1, 1)
	if len(plan) != 8 {
		t.Fatalf("%d faults, want 8: %v", len(plan), plan)
	}
	count := map[FaultKind]int{}
	for i, f := range plan {
		count[f.Kind]++
		if want := 80 * time.Second * time.Duration(i+1) / 9; f.At != want {
			t.Errorf("fault %d at %v, want %v", i, f.At, want)
		}
	}
	want := map[FaultKind]int{FaultKillAggregator: 3, FaultRestartBroker: 1, FaultKillAPI: 1, FaultKillLeader: 1, FaultPauseBroker: 1, FaultStopAggregator: 1}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%d faults of kind %v, want %d", count[k], k, n)
		}
	}
	if plan[0].Kind != FaultKillLeader || plan[len(plan)-1].Kind != FaultStopAggregator {
		t.Errorf("plan %v: want the leader SIGKILL first and the stop last", plan)
	}
	if FaultKillLeader.String() != "SIGKILL partition leader" || FaultPauseBroker.String() != "SIGSTOP broker" {
		t.Errorf("names %q, %q", FaultKillLeader, FaultPauseBroker)
	}
}

func TestClusterFlags(t *testing.T) {
	c, err := ParseFlags([]string{"-cluster", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.KafkaPort != clusterKafkaPort || c.KafkaControllerPort != clusterKafkaCtrlPort || c.KafkaStateDir != clusterKafkaStateDir ||
		c.LeaderKills != 1 || c.BrokerPauses != 1 || c.BrokerPause != clusterPause {
		t.Errorf("-cluster 3 defaults: %+v", c)
	}
	k := &LocalKafka{Port: c.KafkaPort, Nodes: c.Cluster}
	if got := strings.Join(k.Brokers(), ","); got != "127.0.0.1:29292,127.0.0.1:29294,127.0.0.1:29296" {
		t.Errorf("brokers %s", got)
	}
	if c, _ := ParseFlags(nil, io.Discard); c.KafkaPort != 29192 || c.Cluster != 0 {
		t.Errorf("without -cluster: port %d, cluster %d", c.KafkaPort, c.Cluster)
	}
	for _, args := range [][]string{{"-cluster", "2"}, {"-cluster", "3", "-brokers", "h:1"}, {"-cluster", "3", "-scenario", "rebalance"}, {"-cluster", "3", "-broker-pause", "0s"}} {
		if _, err := ParseFlags(args, io.Discard); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
