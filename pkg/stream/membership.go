package stream

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/IBM/sarama"
)

// Defaults of the consumer group membership options. They are chosen for
// fast failure detection on a Kafka broker with default settings: brokers
// reject a session timeout below group.min.session.timeout.ms (6 s by
// default) with INVALID_SESSION_TIMEOUT, so 6 s is the lowest that works
// everywhere. (sarama's own defaults are 10 s, 3 s and 60 s.)
const (
	// DefaultSessionTimeout is the default [SessionTimeout].
	DefaultSessionTimeout = 6 * time.Second
	// DefaultHeartbeatInterval is the default [HeartbeatInterval].
	DefaultHeartbeatInterval = 500 * time.Millisecond
	// DefaultRebalanceTimeout is the default [RebalanceTimeout].
	DefaultRebalanceTimeout = 60 * time.Second
)

// groupConfig holds the consumer group membership settings.
type groupConfig struct {
	sessionTimeout    time.Duration
	heartbeatInterval time.Duration
	rebalanceTimeout  time.Duration
	instanceID        string
	standbyReplicas   int    // see StandbyReplicas (standby.go)
	cooperative       bool   // see CooperativeRebalancing (rebalance.go)
	endpoint          string // see ApplicationServer (hosts.go)
}

func defaultGroupConfig() groupConfig {
	return groupConfig{
		sessionTimeout:    DefaultSessionTimeout,
		heartbeatInterval: DefaultHeartbeatInterval,
		rebalanceTimeout:  DefaultRebalanceTimeout,
	}
}

// SessionTimeout is how long the group coordinator waits for a heartbeat
// from an instance before it declares the instance dead and moves its tasks
// to the others (Kafka's session.timeout.ms; default
// [DefaultSessionTimeout], 6 s). It bounds how long the partitions of a
// crashed instance — or of a stopped static member, see [GroupInstanceID] —
// stay unprocessed. The broker accepts values between its
// group.min.session.timeout.ms (6 s by default) and
// group.max.session.timeout.ms (30 min); outside them Run fails with
// sarama.ErrInvalidSessionTimeout. Lower the broker's minimum to go below
// 6 s; raise the value for instances that may pause longer (GC, a busy
// host) without being dropped. Millisecond precision.
func SessionTimeout(d time.Duration) Opt {
	return optFunc(func(c *config) { c.group.sessionTimeout = d })
}

// HeartbeatInterval is how often an instance heartbeats to the group
// coordinator (Kafka's heartbeat.interval.ms; default
// [DefaultHeartbeatInterval], 500 ms). It must be below [SessionTimeout]
// (at most a third of it is usual). Members learn of a rebalance from a
// heartbeat answer, so it also bounds how long the others take to start
// one after a member joins or dies. Millisecond precision.
func HeartbeatInterval(d time.Duration) Opt {
	return optFunc(func(c *config) { c.group.heartbeatInterval = d })
}

// RebalanceTimeout is how long the group coordinator waits for every member
// to rejoin during a rebalance (Kafka's max.poll.interval.ms as sent in
// JoinGroup; default [DefaultRebalanceTimeout], 60 s). A member that takes
// longer — to commit and close its tasks — is dropped from the group.
// Millisecond precision.
func RebalanceTimeout(d time.Duration) Opt {
	return optFunc(func(c *config) { c.group.rebalanceTimeout = d })
}

// GroupInstanceID turns on static membership (KIP-345; Kafka's
// group.instance.id) with id as this instance's stable identity: 1–249
// characters of [a-zA-Z0-9._-], unique in the application (another running
// instance with the same id is fenced: its Run fails with
// sarama.ErrFencedInstancedId). The default, "", is dynamic membership.
//
// A static member that restarts with the same id within [SessionTimeout]
// gets its tasks back without a rebalance: the other instances keep
// processing and never pause. The trade-off: a static member does not
// leave the group when it stops (no LeaveGroup is sent, also not on a
// graceful shutdown), so when it stops for good — scale-in, or a crash it
// does not come back from — its tasks wait for the session timeout before
// another instance takes them. Choose static membership for restarts in
// place (rolling upgrades, a supervisor restarting a crashed process,
// Kubernetes StatefulSets with the pod name as id), dynamic membership
// for instances that come and go. Needs Kafka 2.3 or newer.
func GroupInstanceID(id string) Opt {
	return optFunc(func(c *config) { c.group.instanceID = id })
}

// groupInstanceIDRe is what Kafka accepts as a group.instance.id.
var groupInstanceIDRe = regexp.MustCompile(`^[0-9a-zA-Z._-]{1,249}$`)

func (g *groupConfig) validate() []error {
	var errs []error
	if err := checkEndpoint(g.endpoint); err != nil {
		errs = append(errs, err)
	}
	if g.sessionTimeout <= 0 {
		errs = append(errs, fmt.Errorf("SessionTimeout must be positive, got %v", g.sessionTimeout))
	}
	if g.heartbeatInterval <= 0 {
		errs = append(errs, fmt.Errorf("HeartbeatInterval must be positive, got %v", g.heartbeatInterval))
	} else if g.sessionTimeout > 0 && g.heartbeatInterval >= g.sessionTimeout {
		errs = append(errs, fmt.Errorf("HeartbeatInterval (%v) must be below SessionTimeout (%v)", g.heartbeatInterval, g.sessionTimeout))
	}
	if g.rebalanceTimeout <= 0 {
		errs = append(errs, fmt.Errorf("RebalanceTimeout must be positive, got %v", g.rebalanceTimeout))
	}
	if g.standbyReplicas < 0 {
		errs = append(errs, fmt.Errorf("StandbyReplicas must not be negative, got %d", g.standbyReplicas))
	}
	if g.instanceID != "" && (!groupInstanceIDRe.MatchString(g.instanceID) || g.instanceID == "." || g.instanceID == "..") {
		errs = append(errs, fmt.Errorf("GroupInstanceID %q: want 1-249 characters of a-z, A-Z, 0-9, '.', '_' and '-'", g.instanceID))
	}
	return errs
}

// apply sets the membership settings on sc (before a SaramaConfig
// function, which may still change them).
func (g *groupConfig) apply(sc *sarama.Config) {
	sc.Consumer.Group.Session.Timeout = g.sessionTimeout
	sc.Consumer.Group.Heartbeat.Interval = g.heartbeatInterval
	sc.Consumer.Group.Rebalance.Timeout = g.rebalanceTimeout
	sc.Consumer.Group.InstanceId = g.instanceID
}

// fatalGroupError tells whether a consumer group error cannot go away by
// retrying: a session timeout the broker does not accept, or this static
// member fenced by another instance with the same GroupInstanceID. It
// returns the error to end Run with, or nil.
func fatalGroupError(err error, g groupConfig) error {
	switch {
	case errors.Is(err, sarama.ErrInvalidSessionTimeout):
		return fmt.Errorf("stream: the broker rejects SessionTimeout %v (outside its group.min.session.timeout.ms..group.max.session.timeout.ms, 6 s..30 min by default): %w", g.sessionTimeout, err)
	case errors.Is(err, sarama.ErrFencedInstancedId):
		return fmt.Errorf("stream: GroupInstanceID %q is used by another running instance: %w", g.instanceID, err)
	}
	return nil
}
