package stream

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func TestMembershipOptions(t *testing.T) {
	top := func() *Topology {
		b := NewBuilder()
		Source(b, "in", String(), String()).To("out", String(), String())
		tp, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		return tp
	}
	a, err := NewApp(top(), Brokers("x:1"), ApplicationID("m"))
	if err != nil {
		t.Fatal(err)
	}
	sc := a.saramaConfig()
	g := sc.Consumer.Group
	if g.Session.Timeout != DefaultSessionTimeout || g.Heartbeat.Interval != DefaultHeartbeatInterval || g.Rebalance.Timeout != DefaultRebalanceTimeout || g.InstanceId != "" {
		t.Fatalf("defaults: %+v", g)
	}
	a, err = NewApp(top(), Brokers("x:1"), ApplicationID("m"), SessionTimeout(8*time.Second),
		HeartbeatInterval(time.Second), RebalanceTimeout(20*time.Second), GroupInstanceID("agg-1"))
	if err != nil {
		t.Fatal(err)
	}
	sc = a.saramaConfig()
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	g = sc.Consumer.Group
	if g.Session.Timeout != 8*time.Second || g.Heartbeat.Interval != time.Second || g.Rebalance.Timeout != 20*time.Second || g.InstanceId != "agg-1" {
		t.Fatalf("set: %+v", g)
	}
	// A SaramaConfig function still has the last word.
	a, err = NewApp(top(), Brokers("x:1"), ApplicationID("m"), SaramaConfig(func(c *sarama.Config) { c.Consumer.Group.Session.Timeout = 7 * time.Second }))
	if err != nil {
		t.Fatal(err)
	}
	if got := a.saramaConfig().Consumer.Group.Session.Timeout; got != 7*time.Second {
		t.Fatalf("SaramaConfig override: %v", got)
	}
	for _, c := range []struct {
		opt  Opt
		want string
	}{
		{SessionTimeout(0), "SessionTimeout"},
		{HeartbeatInterval(-1), "HeartbeatInterval"},
		{HeartbeatInterval(6 * time.Second), "below SessionTimeout"},
		{RebalanceTimeout(0), "RebalanceTimeout"},
		{GroupInstanceID("a b"), "GroupInstanceID"},
		{GroupInstanceID(".."), "GroupInstanceID"},
		{GroupInstanceID(strings.Repeat("x", 250)), "GroupInstanceID"},
	} {
		_, err := NewApp(top(), Brokers("x:1"), ApplicationID("m"), c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error about %s, got %v", c.want, err)
		}
	}
	if err := fatalGroupError(sarama.ErrInvalidSessionTimeout, defaultGroupConfig()); !errors.Is(err, sarama.ErrInvalidSessionTimeout) {
		t.Errorf("invalid session timeout: %v", err)
	}
	if err := fatalGroupError(sarama.ErrRebalanceInProgress, defaultGroupConfig()); err != nil {
		t.Errorf("retriable: %v", err)
	}
}
