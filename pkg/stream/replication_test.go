package stream

import (
	"strings"
	"testing"
)

func TestDefaultReplication(t *testing.T) {
	for _, tc := range []struct {
		brokers    int
		rf, minISR int16
	}{{0, -1, 0}, {1, -1, 0}, {2, -1, 0}, {3, 3, 2}, {5, 3, 2}} {
		rf, minISR := DefaultReplication(tc.brokers)
		if rf != tc.rf || minISR != tc.minISR {
			t.Errorf("DefaultReplication(%d) = %d, %d; want %d, %d", tc.brokers, rf, minISR, tc.rf, tc.minISR)
		}
	}
}

func TestTopicReplication(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       []Opt
		brokers    int
		rf, minISR int16
	}{
		{"single broker: broker defaults", nil, 1, -1, 0},
		{"two brokers: broker defaults", nil, 2, -1, 0},
		{"three brokers: 3 and 2", nil, 3, 3, 2},
		{"six brokers: 3 and 2", nil, 6, 3, 2},
		{"explicit 1 on a cluster", []Opt{ReplicationFactor(1)}, 3, 1, 0},
		{"explicit broker default on a cluster", []Opt{ReplicationFactor(-1)}, 3, -1, 0},
		{"explicit 2", []Opt{ReplicationFactor(2)}, 3, 2, 0},
		{"explicit 5: min.insync 2", []Opt{ReplicationFactor(5)}, 5, 5, 2},
		{"min.insync alone on a cluster", []Opt{MinInSyncReplicas(3)}, 5, 3, 3},
		{"min.insync alone on one broker", []Opt{MinInSyncReplicas(1)}, 1, -1, 1},
		{"both", []Opt{ReplicationFactor(2), MinInSyncReplicas(1)}, 3, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig()
			for _, o := range tc.opts {
				o.apply(&c)
			}
			if err := c.validateReplication(); err != nil {
				t.Fatal(err)
			}
			rf, minISR := c.topicReplication(tc.brokers)
			if rf != tc.rf || minISR != tc.minISR {
				t.Errorf("topicReplication(%d) = %d, %d; want %d, %d", tc.brokers, rf, minISR, tc.rf, tc.minISR)
			}
			entries := map[string]*string{}
			replicationConfig(entries, minISR)
			if v, ok := entries["min.insync.replicas"]; ok != (tc.minISR > 0) || (ok && *v != string(rune('0'+tc.minISR))) {
				t.Errorf("config entries %v for min.insync %d", entries, tc.minISR)
			}
		})
	}
}

func TestReplicationOptionsValidated(t *testing.T) {
	for _, tc := range []struct {
		opts []Opt
		want string // "" for valid
	}{
		{[]Opt{ReplicationFactor(0)}, "ReplicationFactor must be at least 1"},
		{[]Opt{ReplicationFactor(-2)}, "ReplicationFactor must be at least 1"},
		{[]Opt{MinInSyncReplicas(0)}, "MinInSyncReplicas must be at least 1"},
		{[]Opt{MinInSyncReplicas(-1)}, "MinInSyncReplicas must be at least 1"},
		{[]Opt{ReplicationFactor(2), MinInSyncReplicas(3)}, "must not exceed ReplicationFactor 2"},
		{[]Opt{ReplicationFactor(-1), MinInSyncReplicas(2)}, ""},
		{[]Opt{ReplicationFactor(3), MinInSyncReplicas(3)}, ""},
	} {
		c := defaultConfig()
		c.appID = "x"
		c.brokers = []string{"b:9092"}
		for _, o := range tc.opts {
			o.apply(&c)
		}
		err := c.validate(true)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%d options: unexpected error %v", len(tc.opts), err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("error %v, want one containing %q", err, tc.want)
		}
	}
}
