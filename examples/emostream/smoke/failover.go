package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream"
)

// The failover scenario (-scenario failover, `make smoke-failover`)
// measures how long the results of an aggregator's partitions are late
// after it dies or the group changes, with EmoStream's defaults
// (--session-timeout 6s, --heartbeat-interval 500ms, --grace 500ms). Under a
// steady load (-rate, default 400 emojis/s) it runs -trials (default 5)
// of each kind:
//
//   - kill: one of 2 aggregators (dynamic membership) gets SIGKILL and
//     stays dead: seconds from the kill until every partition's results are
//     on time again (a replacement starts after the measurement);
//   - kill-restart: one of 2 aggregators started with --instance-id
//     (static membership) gets SIGKILL and is restarted at once with the
//     same id: seconds until on time again;
//   - scale-out: a third aggregator starts (2→3);
//   - scale-in: one of 3 gets SIGTERM (3→2);
//   - rolling: each of 3 aggregators in turn gets SIGTERM and is started
//     again once the group is stable (dynamic membership);
//   - rolling-static: the same with 3 static members (--instance-id), where
//     a restart needs no rebalance.
//
// A result is on time when the driver's consumer receives it from topic2
// within window_end + grace + 1 s by the wall clock (the contract's bound;
// the consumer's own fetch wait, at most 100 ms, is included). For the
// kills the figure is the time from the kill to the arrival of the last
// late result (0: none was late); for the graceful kinds it is the number
// of late results and of repeated results (a second record for a
// (window_start, emoji_type)) among the windows due while it happened,
// both wanted 0. The summary gives the median and max per kind and goes to
// -failover-out (bench/results/failover.json). The aggregators inherit the
// driver's environment: EMOSTREAM_SESSION_TIMEOUT=10s,
// EMOSTREAM_HEARTBEAT_INTERVAL=250ms or EMOSTREAM_STANDBY_REPLICAS=0 measure
// other settings. Then the load stops and the
// topics are verified exactly as in the other scenarios.

// Defaults of the failover scenario (flags given explicitly win).
const (
	failoverKafkaStateDir = "/tmp/emostream-smoke-failover-kafka"
	failoverKafkaPort     = 29196
	failoverKafkaCtrlPort = 29197
	failoverMaxLoad       = 30 * time.Minute // caps the emojis generated
	failoverDefaultTrials = 5
)

// Failover kinds.
const (
	kindKill          = "kill"
	kindKillRestart   = "kill-restart"
	kindScaleOut      = "scale-out"
	kindScaleIn       = "scale-in"
	kindRolling       = "rolling"
	kindRollingStatic = "rolling-static"
)

var failoverKinds = []string{kindKill, kindKillRestart, kindScaleOut, kindScaleIn, kindRolling, kindRollingStatic}

// failoverDefaults applies the scenario's defaults to c; set tells which
// flags were given.
func failoverDefaults(c *Config, set map[string]bool) {
	steadyLoadDefaults(c, set)
	if !set["grace"] {
		c.Grace = 500 * time.Millisecond // EmoStream's default
	}
	if !set["kafka-state-dir"] {
		c.KafkaStateDir = failoverKafkaStateDir
	}
	if !set["kafka-port"] {
		c.KafkaPort = failoverKafkaPort
	}
	if !set["kafka-controller-port"] {
		c.KafkaControllerPort = failoverKafkaCtrlPort
	}
	if c.Trials == 0 {
		c.Trials = failoverDefaultTrials
	}
	c.Emojis = max(1, int(c.Rate*failoverMaxLoad.Seconds()))
}

// arrival is one topic2 result as the driver's consumer received it.
type arrival struct {
	key       pair
	due       time.Time // window_end + grace + 1 s
	recv      time.Time
	partition int32 // of topic2
}

// resultTail follows topic2 from its end and notes when each result
// arrives.
type resultTail struct {
	grace    time.Duration
	consumer sarama.Consumer
	pcs      []sarama.PartitionConsumer
	mu       sync.Mutex
	arrivals []arrival
	wg       sync.WaitGroup
}

func newResultTail(brokers []string, topic string, grace time.Duration) (*resultTail, error) {
	cons, err := sarama.NewConsumer(brokers, saramaConfig())
	if err != nil {
		return nil, err
	}
	parts, err := cons.Partitions(topic)
	if err != nil {
		cons.Close()
		return nil, err
	}
	t := &resultTail{grace: grace, consumer: cons}
	for _, p := range parts {
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.pcs = append(t.pcs, pc)
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			for m := range pc.Messages() {
				now := time.Now()
				res, err := wire.DecodeResult(m.Value)
				if err != nil {
					continue
				}
				due := time.UnixMilli(res.WindowEnd).Add(grace + time.Second)
				t.mu.Lock()
				t.arrivals = append(t.arrivals, arrival{key: pair{res.WindowStart, res.EmojiType}, due: due, recv: now, partition: m.Partition})
				t.mu.Unlock()
			}
		}()
	}
	return t, nil
}

func (t *resultTail) Close() {
	for _, pc := range t.pcs {
		pc.AsyncClose() // closes Messages once drained
	}
	t.wg.Wait()
	_ = t.consumer.Close()
}

func (t *resultTail) snapshot() []arrival {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.arrivals)
}

// trialFigures are one trial's results.
type trialFigures struct {
	// Recovery is the time from the event to the arrival of the last late
	// result among the windows due in the trial (0 when none was late).
	Recovery time.Duration
	// Late and Repeats count the late and the repeated results among the
	// windows due in the trial; Results all of them.
	Late, Repeats, Results int
	// MaxLate is how late the latest one was (beyond its due time).
	MaxLate time.Duration
	// LateWindows lists the late results per window and topic2 partition,
	// for the log.
	LateWindows []string
}

// measureTrial judges the results of the windows due in (from, to]: from is
// the event (a kill, the first SIGTERM or start). A repeat is a result
// whose (window_start, emoji_type) arrived before, at any time; only a
// result's first arrival is judged on time or late.
func measureTrial(all []arrival, from, to time.Time) trialFigures {
	var f trialFigures
	seen := map[pair]bool{}
	for _, a := range all {
		first := !seen[a.key]
		seen[a.key] = true
		if !a.due.After(from) || a.due.After(to) {
			continue
		}
		f.Results++
		if !first {
			// A result the consumer already had: its repeat is counted,
			// not judged late.
			f.Repeats++
			continue
		}
		if a.recv.After(a.due) {
			w := fmt.Sprintf("window %s partition %d", time.UnixMilli(a.key.start).UTC().Format("15:04:05.000"), a.partition)
			if !slices.Contains(f.LateWindows, w) {
				f.LateWindows = append(f.LateWindows, w)
			}
			f.Late++
			f.Recovery = max(f.Recovery, a.recv.Sub(from))
			f.MaxLate = max(f.MaxLate, a.recv.Sub(a.due))
		}
	}
	return f
}

// KindSummary is the outcome of one kind of trial.
type KindSummary struct {
	Kind   string `json:"kind"`
	Trials int    `json:"trials"`
	// RecoverySeconds per trial: from the event until every result is on
	// time again (the arrival of the last late one; 0: none was late).
	RecoverySeconds []float64 `json:"recovery_seconds"`
	MedianSeconds   float64   `json:"median_seconds"`
	MaxSeconds      float64   `json:"max_seconds"`
	// Late and Repeats per trial, among Results per trial.
	Late    []int `json:"late"`
	Repeats []int `json:"repeats"`
	Results []int `json:"results"`
	// MaxLateSeconds is the most a result was late beyond window_end +
	// grace + 1 s, over the trials.
	MaxLateSeconds float64 `json:"max_late_seconds"`
}

// FailoverReport is what bench/results/failover.json holds.
type FailoverReport struct {
	Date              string        `json:"date"`
	Command           string        `json:"command"`
	Rate              float64       `json:"rate_emojis_per_s"`
	Partitions        int           `json:"partitions"`
	Window            string        `json:"window"`
	Grace             string        `json:"grace"`
	SessionTimeout    string        `json:"session_timeout"`
	HeartbeatInterval string        `json:"heartbeat_interval"`
	StandbyReplicas   int           `json:"standby_replicas"`
	Kinds             []KindSummary `json:"kinds"`
}

func summarize(kind string, figs []trialFigures) KindSummary {
	s := KindSummary{Kind: kind, Trials: len(figs)}
	for _, f := range figs {
		s.RecoverySeconds = append(s.RecoverySeconds, math.Round(f.Recovery.Seconds()*100)/100)
		s.Late = append(s.Late, f.Late)
		s.Repeats = append(s.Repeats, f.Repeats)
		s.Results = append(s.Results, f.Results)
		s.MaxLateSeconds = max(s.MaxLateSeconds, math.Round(f.MaxLate.Seconds()*100)/100)
	}
	if len(s.RecoverySeconds) > 0 {
		v := slices.Clone(s.RecoverySeconds)
		slices.Sort(v)
		n := len(v)
		s.MedianSeconds = v[n/2]
		if n%2 == 0 {
			s.MedianSeconds = math.Round((v[n/2-1]+v[n/2])/2*100) / 100
		}
		s.MaxSeconds = v[n-1]
	}
	return s
}

func sum(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

// runFailover is the failover scenario; see the comment at the top of this
// file.
func (d *driver) runFailover(ctx context.Context) (*Report, error) {
	c := d.cfg
	const groupTimeout = 60 * time.Second
	// quiet: every window a change touched is due (and judged) this long
	// after the group is stable again.
	quiet := c.Window + c.Grace + 2*time.Second
	// The aggregators inherit the driver's environment, so
	// EMOSTREAM_SESSION_TIMEOUT and EMOSTREAM_HEARTBEAT_INTERVAL set there
	// change their membership settings; the defaults otherwise.
	session, heartbeat := membershipFromEnv()
	n := 0
	next := func(prefix string, extra ...string) (*Child, error) {
		n++
		name := fmt.Sprintf("%s-%d", prefix, n)
		if prefix == "static" {
			extra = append(extra, "--instance-id", name)
		}
		return d.startAggregator(name, extra...)
	}
	live := []*Child{}
	for range 2 {
		a, err := next("agg")
		if err != nil {
			return nil, err
		}
		live = append(live, a)
	}
	if err := waitHealthy(ctx, d.url+"/healthz", 60*time.Second); err != nil {
		return nil, fmt.Errorf("API not healthy: %w (see %s)", err, d.api.LogPath)
	}
	stable := func(members int, what string) bool {
		if d.waitMembers(ctx, members, nil, groupTimeout) == nil && ctx.Err() == nil {
			d.problem("group %s not stable with %d members within %v after %s", d.group, members, groupTimeout, what)
		}
		return ctx.Err() == nil
	}
	if !stable(2, "starting 2 aggregators") {
		return nil, ctx.Err()
	}
	obs, err := NewObserver(d.brokers)
	if err != nil {
		return nil, err
	}
	defer obs.Close()
	tail, err := newResultTail(d.brokers, d.outT, c.Grace)
	if err != nil {
		return nil, fmt.Errorf("following %s: %w", d.outT, err)
	}
	defer tail.Close()

	gen := d.newGenerator(c.Emojis)
	stopLoad := startLoad(ctx, gen)
	defer stopLoad()
	d.logf("load started: %.0f emojis/s; warming up for %v", c.Rate, 2*quiet)
	if !sleep(ctx, 2*quiet) {
		return nil, ctx.Err()
	}
	figs := map[string][]trialFigures{}
	judge := func(kind string, trial int, from time.Time) {
		// Results of windows due up to now; wait until the last of them
		// could have arrived on time.
		to := time.Now()
		sleep(ctx, 1500*time.Millisecond)
		f := measureTrial(tail.snapshot(), from, to)
		figs[kind] = append(figs[kind], f)
		d.logf("%s %d/%d: on time again after %.2fs; %d of %d results late (latest by %.2fs), %d repeated",
			kind, trial, c.Trials, f.Recovery.Seconds(), f.Late, f.Results, f.MaxLate.Seconds(), f.Repeats)
		if len(f.LateWindows) > 0 {
			d.logf("%s %d/%d: late: %s (due = window end + grace + 1 s)", kind, trial, c.Trials, strings.Join(f.LateWindows, "; "))
		}
	}
	stopFor := func(a *Child) {
		d.mu.Lock()
		d.stopped[a] = true
		d.mu.Unlock()
		if err := a.Stop(60 * time.Second); err != nil {
			d.problem("%v", err)
		}
	}
	oldest := func() int { // the longest-running of live
		i := 0
		for j, a := range live {
			if a.StartedAt().Before(live[i].StartedAt()) {
				i = j
			}
		}
		return i
	}

	want := func(kinds ...string) bool {
		if c.Kinds == "" {
			return true
		}
		for _, k := range kinds {
			if slices.Contains(strings.Split(c.Kinds, ","), k) {
				return true
			}
		}
		return false
	}

	// kill: SIGKILL one of 2, measure, then replace it.
	for trial := 1; trial <= c.Trials && want(kindKill); trial++ {
		i := oldest()
		victim := live[i]
		from := time.Now()
		victim.Kill()
		d.mu.Lock()
		d.stopped[victim] = true
		d.mu.Unlock()
		d.logf("kill %d/%d: SIGKILL %s (pid %d); it stays dead", trial, c.Trials, victim.Name, victim.Pid())
		live = slices.Delete(live, i, i+1)
		if !sleep(ctx, session+quiet) {
			return nil, ctx.Err()
		}
		judge(kindKill, trial, from)
		a, err := next("agg")
		if err != nil {
			return nil, err
		}
		live = append(live, a)
		if !stable(2, "starting "+a.Name) || !sleep(ctx, quiet) {
			return nil, ctx.Err()
		}
	}

	// scale-out 2→3 and scale-in 3→2, alternately.
	for trial := 1; trial <= c.Trials && want(kindScaleOut, kindScaleIn); trial++ {
		from := time.Now()
		a, err := next("agg")
		if err != nil {
			return nil, err
		}
		live = append(live, a)
		d.logf("scale-out %d/%d: started %s", trial, c.Trials, a.Name)
		if !stable(3, "starting "+a.Name) || !sleep(ctx, quiet) {
			return nil, ctx.Err()
		}
		judge(kindScaleOut, trial, from)
		i := oldest()
		victim := live[i]
		live = slices.Delete(live, i, i+1)
		from = time.Now()
		d.logf("scale-in %d/%d: SIGTERM %s", trial, c.Trials, victim.Name)
		stopFor(victim)
		if !stable(2, "stopping "+victim.Name) || !sleep(ctx, quiet) {
			return nil, ctx.Err()
		}
		judge(kindScaleIn, trial, from)
	}

	// rolling restarts of 3 dynamic members.
	a, err := next("agg")
	if err != nil {
		return nil, err
	}
	live = append(live, a)
	if !stable(3, "starting "+a.Name) || !sleep(ctx, quiet) {
		return nil, ctx.Err()
	}
	rolling := func(kind string) error {
		for trial := 1; trial <= c.Trials; trial++ {
			from := time.Now()
			for _, a := range live {
				// As an operator does: the next instance is restarted once
				// every instance reports RUNNING (its tasks created and
				// restored), not merely once the group is stable — an
				// instance stopped right after an assignment never starts
				// the tasks it was just given.
				d.waitRunning(ctx, live, groupTimeout)
				old := d.waitMembers(ctx, len(live), nil, groupTimeout)
				if err := a.Stop(60 * time.Second); err != nil {
					d.problem("%v", err)
				}
				if err := a.Start(); err != nil {
					return err
				}
				// Until the restarted one is back: a new member id (a
				// static member gets one too).
				if d.waitMembers(ctx, len(live), old, groupTimeout) == nil && ctx.Err() == nil {
					d.problem("group %s: %s did not rejoin within %v", d.group, a.Name, groupTimeout)
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			d.logf("%s %d/%d: restarted %d aggregators one by one", kind, trial, c.Trials, len(live))
			if !sleep(ctx, quiet) {
				return ctx.Err()
			}
			judge(kind, trial, from)
		}
		return nil
	}
	if want(kindRolling) {
		if err := rolling(kindRolling); err != nil {
			return nil, err
		}
	}
	if !want(kindRollingStatic, kindKillRestart) {
		return d.failoverSummary(ctx, obs, gen, stopLoad, figs, session, heartbeat)
	}

	// Static members: replace the dynamic ones.
	var static []*Child
	for range 3 {
		a, err := next("static")
		if err != nil {
			return nil, err
		}
		static = append(static, a)
	}
	for _, a := range live {
		stopFor(a)
	}
	live = static
	if !stable(3, "switching to 3 static members") || !sleep(ctx, quiet) {
		return nil, ctx.Err()
	}
	if want(kindRollingStatic) {
		if err := rolling(kindRollingStatic); err != nil {
			return nil, err
		}
	}
	// kill-restart: 2 static members, SIGKILL one and restart it at once.
	stopFor(live[2])
	live = live[:2]
	if !stable(2, "stopping a static member") || !sleep(ctx, quiet) {
		return nil, ctx.Err()
	}
	for trial := 1; trial <= c.Trials && want(kindKillRestart); trial++ {
		victim := live[trial%2]
		old := d.waitMembers(ctx, 2, nil, groupTimeout)
		from := time.Now()
		victim.Kill()
		if err := victim.Start(); err != nil {
			return nil, err
		}
		d.logf("kill-restart %d/%d: SIGKILL %s and restarted it with the same --instance-id", trial, c.Trials, victim.Name)
		if !sleep(ctx, quiet+2*time.Second) {
			return nil, ctx.Err()
		}
		judge(kindKillRestart, trial, from)
		if d.waitMembers(ctx, 2, old, groupTimeout) == nil && ctx.Err() == nil {
			d.problem("group %s: %s did not rejoin within %v", d.group, victim.Name, groupTimeout)
		}
	}

	return d.failoverSummary(ctx, obs, gen, stopLoad, figs, session, heartbeat)
}

// failoverSummary logs and writes the failover figures, stops the load and
// verifies the topics.
func (d *driver) failoverSummary(ctx context.Context, obs *Observer, gen *Generator, stopLoad func() GenStats,
	figs map[string][]trialFigures, session, heartbeat time.Duration) (*Report, error) {
	c := d.cfg
	rep := FailoverReport{Date: time.Now().UTC().Format(time.RFC3339), Command: "make smoke-failover",
		Rate: c.Rate, Partitions: c.Partitions, Window: c.Window.String(), Grace: c.Grace.String(),
		SessionTimeout: session.String(), HeartbeatInterval: heartbeat.String(), StandbyReplicas: standbyFromEnv()}
	var lines []string
	for _, k := range failoverKinds {
		if len(figs[k]) == 0 {
			continue
		}
		s := summarize(k, figs[k])
		rep.Kinds = append(rep.Kinds, s)
		lines = append(lines, fmt.Sprintf("  %-15s trials %d  on time again after: median %.2fs, max %.2fs  late results %d, repeats %d (of %d; latest by %.2fs)",
			k, s.Trials, s.MedianSeconds, s.MaxSeconds, sum(s.Late), sum(s.Repeats), sum(s.Results), s.MaxLateSeconds))
	}
	d.logf("FAILOVER SUMMARY (%.0f emojis/s, %d partitions, window %v + grace %v, session timeout %v, heartbeat %v, standby replicas %d):\n%s",
		c.Rate, c.Partitions, c.Window, c.Grace, session, heartbeat, rep.StandbyReplicas, strings.Join(lines, "\n"))
	if c.FailoverOut != "" {
		if err := writeJSON(c.FailoverOut, rep); err != nil {
			d.problem("writing %s: %v", c.FailoverOut, err)
		} else {
			d.logf("wrote %s", c.FailoverOut)
		}
	}

	gs := stopLoad()
	d.mu.Lock()
	d.sent = gs.Acked + gs.Failed + gs.Unsent
	d.mu.Unlock()
	d.logGenerator(gen, gs)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r, _, err := d.finish(ctx, obs, gen, gs)
	return r, err
}

// membershipFromEnv is the aggregators' --session-timeout and
// --heartbeat-interval: EmoStream's defaults, or what the driver's
// environment sets (the children inherit it).
func membershipFromEnv() (session, heartbeat time.Duration) {
	session, heartbeat = stream.DefaultSessionTimeout, stream.DefaultHeartbeatInterval
	if d, err := time.ParseDuration(os.Getenv("EMOSTREAM_SESSION_TIMEOUT")); err == nil && d > 0 {
		session = d
	}
	if d, err := time.ParseDuration(os.Getenv("EMOSTREAM_HEARTBEAT_INTERVAL")); err == nil && d > 0 {
		heartbeat = d
	}
	return session, heartbeat
}

// standbyFromEnv is the aggregators' --standby-replicas: EmoStream's
// default (1), or EMOSTREAM_STANDBY_REPLICAS from the driver's environment.
func standbyFromEnv() int {
	if n, err := strconv.Atoi(os.Getenv("EMOSTREAM_STANDBY_REPLICAS")); err == nil && n >= 0 {
		return n
	}
	return 1
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// waitRunning waits until every one of cs has logged the stream state
// RUNNING and kept it for half a second; a timeout is a problem of the run.
func (d *driver) waitRunning(ctx context.Context, cs []*Child, timeout time.Duration) {
	const hold = 500 * time.Millisecond
	deadline := time.Now().Add(timeout)
	var since time.Time
	for ctx.Err() == nil {
		all := true
		for _, c := range cs {
			if c.StreamState() != "RUNNING" {
				all = false
			}
		}
		switch {
		case !all:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= hold:
			return
		}
		if time.Now().After(deadline) {
			d.problem("aggregators not all RUNNING within %v", timeout)
			return
		}
		sleep(ctx, 50*time.Millisecond)
	}
}
