package stream

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckWarmupsProbeInterval: an instance whose warm-ups have not caught
// up (here: their copies are not even being filled) waits for
// ProbingRebalanceInterval before it probes, probes once per assignment,
// and counts the probe in its join metadata; one without warm-ups never
// probes.
func TestCheckWarmupsProbeInterval(t *testing.T) {
	b := NewBuilder()
	b.AddStore(KeyValueStoreBuilder("s", String(), String()))
	pass := func() Processor[string, string, string, string] { return &planProbe{} }
	Process(Source(b, "in", String(), String()), "p", pass, "s")
	top, err := b.Build()
	require.NoError(t, err)
	app, err := NewApp(top, Brokers("x:1"), ApplicationID("probe"), CooperativeRebalancing(),
		ProbingRebalanceInterval(time.Minute))
	require.NoError(t, err)
	sess := fakeSession{}

	app.checkWarmups(sess)
	assert.Zero(t, app.sb.probes.Load(), "no warm-ups: no probe")

	app.assignedStandbys(nil, []TaskID{{Partition: 1}}, 5, nil)
	app.checkWarmups(sess)
	assert.Zero(t, app.sb.probes.Load(), "warm-up behind, interval not over: no probe")

	app.sb.mu.Lock()
	app.sb.warmupSince = time.Now().Add(-time.Minute)
	app.sb.mu.Unlock()
	app.checkWarmups(sess)
	assert.Equal(t, int64(1), app.sb.probes.Load(), "interval over: probe although behind")
	app.sb.mu.Lock()
	app.sb.lastProbe = time.Now().Add(-time.Hour)
	app.sb.warmupSince = time.Now().Add(-time.Hour)
	app.sb.mu.Unlock()
	app.checkWarmups(sess)
	assert.Equal(t, int64(1), app.sb.probes.Load(), "once per assignment")

	// The next assignment still has the warm-up: the interval counts from
	// the last probe.
	app.assignedStandbys(nil, []TaskID{{Partition: 1}}, 6, nil)
	app.sb.mu.Lock()
	app.sb.warmupSince, app.sb.lastProbe = time.Now(), time.Now().Add(-time.Hour)
	app.sb.mu.Unlock()
	app.checkWarmups(sess)
	assert.Equal(t, int64(1), app.sb.probes.Load())

	assert.Error(t, newAppErr(top, AcceptableRecoveryLag(-1)))
	assert.Error(t, newAppErr(top, MaxWarmupReplicas(0)))
	assert.Error(t, newAppErr(top, ProbingRebalanceInterval(0)))
}

// newAppErr is NewApp's error for opts on top of valid brokers and id.
func newAppErr(top *Topology, opts ...Opt) error {
	_, err := NewApp(top, append([]Opt{Brokers("x:1"), ApplicationID("probe")}, opts...)...)
	return err
}
