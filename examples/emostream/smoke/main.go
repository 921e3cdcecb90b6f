// Command smoke is EmoStream's fault-injection smoke test on a real Kafka.
//
// It starts its own single-node Kafka with scripts/kafka-local.sh (state in
// /tmp/emostream-smoke-kafka, client port 29192, unless -brokers names
// another cluster), builds the emostream binary, and runs one `emostream
// api` and several `emostream aggregate` processes on topics named after
// the run. A generator posts emojis to the API at a steady rate, each with
// its own user_id, while the driver injects faults spread over the run:
// aggregator SIGKILLs (each restarted), an aggregator stopped for good, a
// broker restart on the same data and an API SIGKILL under load.
//
// When the generator is done and every window has closed, it reads topic1,
// topic2 and the DLQ back (read_committed) and checks them exactly (see
// [Verify]): every acknowledged emoji is in topic1, every (window, emoji)
// count in topic2 equals the number of its topic1 records minus its late
// records in the DLQ, and every result's record timestamp is the largest
// timestamp of the records it counts. It prints one verdict line, SMOKE
// PASS or SMOKE FAIL, and exits non-zero on failure. Run it with `make
// smoke`.
//
// -scenario rebalance (`make smoke-rebalance`) replaces the faults with
// consumer-group changes under a steady load: aggregators scaled 1→2→1→2
// by starts and SIGTERMs must write no topic2 result twice, and after a
// SIGKILL a result written again must be identical to the first; see
// rebalance.go.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/examples/emostream/load"
)

func main() {
	cfg, err := ParseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "smoke: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &driver{cfg: cfg, out: os.Stdout}
	os.Exit(d.run(ctx))
}

// driver is one smoke run.
type driver struct {
	cfg *Config
	out io.Writer

	start    time.Time
	id       string
	in, outT string
	dlq      string
	group    string
	work     string
	bin      string
	url      string   // the API's base URL
	common   []string // flags every emostream process gets
	brokers  []string
	kafka    *LocalKafka // nil with -brokers
	api      *Child
	aggs     []*Child
	stopped  map[*Child]bool // aggregators stopped for good
	stopping atomic.Bool     // the driver is shutting the children down

	mu         sync.Mutex
	problems   []string
	counts     map[FaultKind]int
	brokerDown []time.Duration
	unexpected int
	sent       int64        // emojis the generator sent (any outcome)
	rebal      *RepeatStats // the rebalance scenario's figures, once known
}

func (d *driver) logf(format string, args ...any) {
	el := time.Duration(0)
	if !d.start.IsZero() {
		el = time.Since(d.start)
	}
	fmt.Fprintf(d.out, "smoke: [%6.1fs] %s\n", el.Seconds(), fmt.Sprintf(format, args...))
}

// problem records a failure found while running (rather than by Verify).
func (d *driver) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.mu.Lock()
	d.problems = append(d.problems, msg)
	d.mu.Unlock()
	d.logf("PROBLEM: %s", msg)
}

func (d *driver) run(ctx context.Context) int {
	d.start = time.Now()
	d.counts = map[FaultKind]int{}
	d.stopped = map[*Child]bool{}
	d.id = strconv.FormatInt(d.start.UnixMilli(), 36)
	d.in, d.outT, d.dlq = "smoke-"+d.id+"-in", "smoke-"+d.id+"-out", "smoke-"+d.id+"-dlq"
	d.group = "emostream-aggregator-" + d.in // the aggregator's default application id

	report, runErr := d.runPhases(ctx)
	passed := runErr == nil && report != nil && report.OK() && !d.failedSoFar()
	d.cleanup(passed)
	return d.verdict(report, runErr, passed)
}

// runPhases does the run up to the verification; cleanup is the caller's.
func (d *driver) runPhases(ctx context.Context) (*Report, error) {
	if err := d.setup(ctx); err != nil {
		return nil, err
	}
	if d.cfg.Scenario == ScenarioRebalance {
		return d.runRebalance(ctx)
	}
	if d.cfg.Scenario == ScenarioFailover {
		return d.runFailover(ctx)
	}
	return d.runFaults(ctx)
}

// setup builds the binary, starts Kafka (unless -brokers), creates the
// run's topics and starts the API.
func (d *driver) setup(ctx context.Context) error {
	c := d.cfg
	var err error
	repo := c.Repo
	if repo == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		if repo, err = findRepo(wd); err != nil {
			return err
		}
	}
	d.work = c.WorkDir
	if d.work == "" {
		if d.work, err = os.MkdirTemp("", "emostream-smoke-"); err != nil {
			return err
		}
	} else if err = os.MkdirAll(d.work, 0o755); err != nil {
		return err
	}
	if c.Scenario == ScenarioRebalance {
		d.logf("run %s, scenario=rebalance, mode=%s: %.0f emojis/s (batches of %d, %d clients), aggregators 1, 2, 1, 2 (starts and SIGTERMs), then a SIGKILL and restart; %d partitions, window %v, grace %v, phases of %v; logs in %s",
			d.id, c.Mode(), c.Rate, c.Batch, c.Workers, c.Partitions, c.Window, c.Grace, c.Phase, d.work)
	} else {
		d.logf("run %s, mode=%s: %d emojis at %.0f/s (batches of %d, %d clients), %d aggregators, %d partitions, window %v, grace %v; logs in %s",
			d.id, c.Mode(), c.Emojis, c.Rate, c.Batch, c.Workers, c.Aggregators, c.Partitions, c.Window, c.Grace, d.work)
	}

	// Build.
	if c.Bin != "" {
		if d.bin, err = filepath.Abs(c.Bin); err != nil {
			return err
		}
		d.logf("testing %s", d.bin)
	} else {
		d.bin = filepath.Join(d.work, "emostream")
		args := []string{"build", "-o", d.bin}
		if c.Race {
			args = append(args, "-race")
		}
		build := exec.CommandContext(ctx, "go", append(args, "./examples/emostream")...)
		build.Dir = repo
		build.Stdout, build.Stderr = d.out, d.out
		if err := build.Run(); err != nil {
			return fmt.Errorf("building emostream: %w", err)
		}
		d.logf("built %s", d.bin)
	}

	// Kafka.
	d.brokers = c.Brokers
	if len(d.brokers) == 0 {
		d.kafka = &LocalKafka{Script: filepath.Join(repo, "scripts", "kafka-local.sh"), StateDir: c.KafkaStateDir,
			Port: c.KafkaPort, ControllerPort: c.KafkaControllerPort, Nodes: c.Cluster, Log: d.out}
		d.logf("starting Kafka on %s (state in %s)", strings.Join(d.kafka.Brokers(), ","), c.KafkaStateDir)
		if err := d.kafka.Up(); err != nil {
			return err
		}
		d.brokers = d.kafka.Brokers()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := createTopics(d.brokers, int32(c.Partitions), d.in, d.outT, d.dlq); err != nil {
		return err
	}
	d.logf("Kafka %s ready; topics %s, %s, %s", strings.Join(d.brokers, ","), d.in, d.outT, d.dlq)

	// The API.
	apiAddr, err := freeAddr()
	if err != nil {
		return err
	}
	d.common = []string{"--brokers", strings.Join(d.brokers, ","), "--input-topic", d.in, "--output-topic", d.outT,
		"--dlq-topic", d.dlq, "--partitions", strconv.Itoa(c.Partitions)}
	d.api = &Child{Name: "api", Bin: d.bin, LogPath: filepath.Join(d.work, "api.log"), OnUnexpectedExit: d.unexpectedExit,
		Args: append([]string{"api", "--http", apiAddr}, d.common...)}
	d.url = "http://" + apiAddr
	return d.api.Start()
}

// startAggregator starts a new aggregate process called name, with extra
// flags after the driver's own.
func (d *driver) startAggregator(name string, extra ...string) (*Child, error) {
	c := d.cfg
	a := append([]string{"aggregate", "--window", c.Window.String(), "--grace", c.Grace.String(),
		"--scale", strconv.FormatInt(c.Scale, 10)}, d.common...)
	if c.ExactlyOnce {
		a = append(a, "--exactly-once")
	}
	if c.PersistentState {
		a = append(a, "--data-dir", filepath.Join(d.work, name+"-data"))
	}
	a = append(a, extra...)
	ch := &Child{Name: name, Bin: d.bin, Args: a, LogPath: filepath.Join(d.work, name+".log"), OnUnexpectedExit: d.unexpectedExit}
	if err := ch.Start(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.aggs = append(d.aggs, ch)
	d.mu.Unlock()
	return ch, nil
}

// runFaults is the fault-injection scenario: the aggregators, then the
// generator with faults spread over it, then the verification.
func (d *driver) runFaults(ctx context.Context) (*Report, error) {
	c := d.cfg
	for i := range c.Aggregators {
		if _, err := d.startAggregator(fmt.Sprintf("agg-%d", i+1)); err != nil {
			return nil, err
		}
	}
	if err := waitHealthy(ctx, d.url+"/healthz", 60*time.Second); err != nil {
		return nil, fmt.Errorf("API not healthy: %w (see %s)", err, d.api.LogPath)
	}
	d.logf("API healthy on %s; waiting for the %d aggregators to form group %s", d.url, c.Aggregators, d.group)
	d.waitGroup(ctx, c.Aggregators, 90*time.Second)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	// Generate, with faults.
	gen := d.newGenerator(c.Emojis)
	planned := time.Duration(float64(c.Emojis) / c.Rate * float64(time.Second))
	brokerRestarts := c.BrokerRestarts
	if d.kafka == nil && brokerRestarts > 0 {
		d.logf("-brokers given: skipping the %d broker restart(s)", brokerRestarts)
		brokerRestarts = 0
	}
	plan := d.schedule(planned, brokerRestarts)
	d.logf("generating for about %v; %d faults planned", planned.Round(time.Second), len(plan))
	faultCtx, stopFaults := context.WithCancel(ctx)
	faultsDone := make(chan struct{})
	genStart := time.Now()
	go func() {
		defer close(faultsDone)
		d.injectFaults(faultCtx, genStart, plan)
	}()
	gs := gen.Run(ctx)
	<-faultsDone
	stopFaults()
	d.logGenerator(gen, gs)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	// Settle, stop, read back.
	obs, err := NewObserver(d.brokers)
	if err != nil {
		return nil, err
	}
	defer obs.Close()
	r, _, err := d.finish(ctx, obs, gen, gs)
	return r, err
}

// newGenerator is the run's load generator for total emojis.
// startLoad runs gen until the returned stop is called (or ctx ends). stop
// ends the load and returns its stats; calling it again (deferred) returns
// the same stats.
func startLoad(ctx context.Context, gen *Generator) (stop func() GenStats) {
	stopGen := make(chan struct{})
	gen.Stop = stopGen
	done := make(chan GenStats, 1)
	go func() { done <- gen.Run(ctx) }()
	var once sync.Once
	var gs GenStats
	return func() GenStats {
		once.Do(func() { close(stopGen); gs = <-done })
		return gs
	}
}

func (d *driver) newGenerator(total int) *Generator {
	c := d.cfg
	return &Generator{URL: d.url + "/api", Prefix: "s" + d.id + "-", Total: total, Batch: c.Batch, Rate: c.Rate,
		Workers: c.Workers, Emojis: load.DefaultEmojis(), Progress: d.out, ProgressEvery: 10 * time.Second}
}

// logGenerator logs the generator's outcome and its problems.
func (d *driver) logGenerator(gen *Generator, gs GenStats) {
	d.logf("generator done in %v: %d emojis in %d requests; %d acked, %d failed, %d unsent (503s %d, other HTTP errors %d, network errors %d)",
		gs.Elapsed.Round(100*time.Millisecond), gs.Acked+gs.Failed+gs.Unsent, gs.Requests, gs.Acked, gs.Failed, gs.Unsent,
		gs.HTTP503, gs.HTTPOther, gs.NetErrors)
	d.logf("slowest 202: %v; %d acknowledgements took longer than %v", gs.MaxAck.Round(time.Millisecond), gs.SlowAcks, SlowAck)
	for _, p := range gen.Problems() {
		d.problem("API: %s", p)
	}
}

// finish waits until every window closed and its result is written, stops
// the processes, reads the three topics back and verifies them.
func (d *driver) finish(ctx context.Context, obs *Observer, gen *Generator, gs GenStats) (*Report, Data, error) {
	c := d.cfg
	d.settle(ctx, obs, gs.MaxTS)
	d.stopAll()
	if err := d.waitTransactions(ctx, obs, 2*time.Minute); err != nil {
		return nil, Data{}, err
	}
	d.logf("reading %s, %s and %s back (read_committed)", d.in, d.outT, d.dlq)
	data := Data{Window: c.Window, Grace: c.Grace, Scale: c.Scale, InputTopic: d.in, Prefix: gen.Prefix,
		Status: gen.Status(), AckedAt: gen.AckedAt, StrictLate: c.StrictLate}
	var readErrs [3]error
	var wg sync.WaitGroup
	for i, t := range []struct {
		name string
		dst  *[]Record
		hdrs bool
	}{{d.in, &data.Topic1, false}, {d.outT, &data.Topic2, false}, {d.dlq, &data.DLQ, true}} {
		wg.Go(func() {
			if *t.dst, readErrs[i] = obs.ReadAll(ctx, t.name, 3*time.Second, t.hdrs); readErrs[i] != nil {
				readErrs[i] = fmt.Errorf("reading %s: %w", t.name, readErrs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(readErrs[:]...); err != nil {
		return nil, data, err
	}
	r := Verify(data)
	d.printReport(gs, r)
	if !r.OK() || d.failedSoFar() || c.Dump {
		if err := dump(d.work, data); err != nil {
			d.logf("writing the topics to %s: %v", d.work, err)
		} else {
			d.logf("topics and statuses written to %s (topic1.tsv, topic2.tsv, dlq.tsv, status.tsv)", d.work)
		}
		d.dumpInternal(ctx, obs)
	}
	return r, data, nil
}

func (d *driver) failedSoFar() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.problems) > 0
}

// dumpInternal writes the aggregators' internal topics (changelogs) and
// the group's committed offsets to the work dir, for a post-mortem.
func (d *driver) dumpInternal(ctx context.Context, obs *Observer) {
	topics, err := obs.Topics(d.group + "-")
	if err != nil {
		d.logf("listing internal topics: %v", err)
		return
	}
	for _, t := range topics {
		recs, err := obs.ReadAll(ctx, t, 3*time.Second, true)
		if err == nil {
			err = dumpRaw(filepath.Join(d.work, "internal-"+t+".tsv"), recs)
		}
		if err != nil {
			d.logf("dumping %s: %v", t, err)
		}
	}
	if offs, err := obs.Committed(d.group, d.in); err != nil {
		d.logf("reading committed offsets: %v", err)
	} else {
		_ = writeFile(filepath.Join(d.work, "committed.tsv"), func(w *bufio.Writer) {
			for p := int32(0); p < int32(len(offs)); p++ {
				fmt.Fprintf(w, "%s\t%d\t%d\n", d.in, p, offs[p])
			}
		})
	}
	d.logf("internal topics %v and committed offsets written to %s", topics, d.work)
}

// unexpectedExit handles a child that died without being asked to: a
// failure of the run; the child is restarted so the run can go on.
func (d *driver) unexpectedExit(c *Child, err error) {
	if d.stopping.Load() {
		return
	}
	d.mu.Lock()
	d.unexpected++
	d.mu.Unlock()
	d.problem("%s (pid %d) exited unexpectedly: %s (log %s); restarting it", c.Name, c.Pid(), exitText(err), c.LogPath)
	time.Sleep(d.cfg.RestartDelay)
	if d.stopping.Load() {
		return
	}
	if err := c.Start(); err != nil {
		d.problem("restarting %s: %v", c.Name, err)
	}
}

// injectFaults runs the plan, each fault at its time after start.
func (d *driver) injectFaults(ctx context.Context, start time.Time, plan []Fault) {
	kills := 0
	var lastDone time.Time
	for i, f := range plan {
		// Faults that fell behind (a slow broker restart) still keep a gap,
		// so a restarted process is up before the next fault.
		at := start.Add(f.At)
		if gap := lastDone.Add(minFaultGap); at.Before(gap) {
			at = gap
		}
		if !sleep(ctx, time.Until(at)) {
			return
		}
		tag := fmt.Sprintf("fault %d/%d at +%.1fs:", i+1, len(plan), time.Since(start).Seconds())
		switch f.Kind {
		case FaultKillAggregator:
			alive := d.alive()
			a := alive[kills%len(alive)]
			kills++
			pid := a.Pid()
			a.Kill()
			d.logf("%s SIGKILL %s (pid %d); restart in %v", tag, a.Name, pid, d.cfg.RestartDelay)
			time.Sleep(d.cfg.RestartDelay)
			if err := a.Start(); err != nil {
				d.problem("restarting %s: %v", a.Name, err)
			}
		case FaultStopAggregator:
			a := oldest(d.alive())
			d.logf("%s SIGTERM %s (pid %d), not restarted", tag, a.Name, a.Pid())
			d.mu.Lock()
			d.stopped[a] = true
			d.mu.Unlock()
			if err := a.Stop(60 * time.Second); err != nil {
				d.problem("stopping %s: %v", a.Name, err)
			}
		case FaultRestartBroker:
			d.logf("%s restarting the broker (stop, keeping its data, then start)", tag)
			down, err := d.kafka.Restart()
			if err != nil {
				d.problem("broker restart: %v", err)
			}
			d.mu.Lock()
			d.brokerDown = append(d.brokerDown, down)
			d.mu.Unlock()
			d.logf("broker back after %v", down.Round(100*time.Millisecond))
		case FaultKillAPI:
			pid := d.api.Pid()
			d.api.Kill()
			d.logf("%s SIGKILL api (pid %d) under load; restarting it", tag, pid)
			if err := d.api.Start(); err != nil {
				d.problem("restarting api: %v", err)
			}
		default:
			d.injectClusterFault(tag, f.Kind)
		}
		d.mu.Lock()
		d.counts[f.Kind]++
		d.mu.Unlock()
		lastDone = time.Now()
	}
}

// minFaultGap is the least time between the end of one fault and the next.
const minFaultGap = 3 * time.Second

// oldest returns the child that has been running longest.
func oldest(cs []*Child) *Child {
	o := cs[0]
	for _, c := range cs[1:] {
		if c.StartedAt().Before(o.StartedAt()) {
			o = c
		}
	}
	return o
}

// alive lists the aggregators not stopped for good.
func (d *driver) alive() []*Child {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*Child
	for _, a := range d.aggs {
		if !d.stopped[a] {
			out = append(out, a)
		}
	}
	return out
}

// waitGroup waits until the aggregators' consumer group is stable with n
// members; a timeout is only reported.
func (d *driver) waitGroup(ctx context.Context, n int, timeout time.Duration) {
	d.waitMembers(ctx, n, nil, timeout)
}

// waitMembers waits until the aggregators' consumer group is stable with n
// members, at least one of them not in old (when old is given: a member
// that joined since old was taken). It returns the members, or nil after a
// timeout, which it logs.
func (d *driver) waitMembers(ctx context.Context, n int, old map[string]bool, timeout time.Duration) map[string]bool {
	admin, err := sarama.NewClusterAdmin(d.brokers, saramaConfig())
	if err != nil {
		d.logf("cannot watch the group: %v", err)
		return nil
	}
	defer admin.Close()
	start := time.Now()
	deadline := start.Add(timeout)
	for ctx.Err() == nil {
		gs, err := admin.DescribeConsumerGroups([]string{d.group})
		if err == nil && len(gs) == 1 && gs[0].State == "Stable" && len(gs[0].Members) == n {
			members := make(map[string]bool, n)
			joined := old == nil
			for id := range gs[0].Members {
				members[id] = true
				joined = joined || !old[id]
			}
			if joined {
				d.logf("group %s stable with %d members after %v", d.group, n, time.Since(start).Round(100*time.Millisecond))
				return members
			}
		}
		if time.Now().After(deadline) {
			d.logf("group %s not stable with %d members after %v; going on", d.group, n, timeout)
			return nil
		}
		sleep(ctx, 250*time.Millisecond)
	}
	return nil
}

// settle waits until every window is closed and its result written: the
// wall clock past the last window's end + grace, the group stable with one
// member per running aggregator, its lag 0, and topic2, the DLQ and the
// group's members unchanged for a while. Lag 0 alone is not enough: an
// aggregator SIGKILLed late in the run may have committed all of its input
// and still hold windows that only the wall clock closes; its partitions
// stay with the dead member until its session times out, and the results
// come from their next owner after that.
func (d *driver) settle(ctx context.Context, obs *Observer, maxTS int64) {
	c := d.cfg
	size := c.Window.Milliseconds()
	closeAt := time.UnixMilli(windowStart(maxTS, size) + size).Add(c.Grace)
	d.logf("waiting for the last window to close (%s + grace) and the results to settle", closeAt.Format("15:04:05.000"))
	sleep(ctx, time.Until(closeAt.Add(2*time.Second)))
	deadline := time.Now().Add(c.SettleTimeout)
	var lastEnds int64 = -1
	lastMembers := ""
	lastChange := time.Now()
	lastLog := time.Now()
	for ctx.Err() == nil {
		want := len(d.alive())
		lag, err1 := obs.Lag(d.group, d.in)
		ends, err2 := obs.Ends(d.outT, d.dlq)
		state, members, n, err3 := obs.Group(d.group)
		if err := errors.Join(err1, err2, err3); err != nil {
			d.logf("settle: %v", err)
		} else {
			if ends != lastEnds || members != lastMembers {
				lastEnds, lastMembers, lastChange = ends, members, time.Now()
			}
			stable := (state == "Stable" && n == want) || (want == 0 && n == 0)
			if stable && lag == 0 && time.Since(lastChange) >= c.Quiet {
				d.logf("settled: group %s with %d members, lag 0, topic2+DLQ end offsets %d unchanged for %v", state, n, ends, c.Quiet)
				return
			}
			if time.Since(lastLog) >= 10*time.Second {
				d.logf("settling: group %s with %d members (want %d running), lag %d, topic2+DLQ end offsets %d", state, n, want, lag, ends)
				lastLog = time.Now()
			}
		}
		if time.Now().After(deadline) {
			d.problem("results did not settle within %v after the last window closed (lag %d; group %s with %d members, %d aggregators running)", c.SettleTimeout, lag, state, n, want)
			return
		}
		sleep(ctx, 500*time.Millisecond)
	}
}

// stopAll stops the API and the aggregators gracefully (SIGTERM); a child
// that exits badly or must be killed is a problem.
func (d *driver) stopAll() {
	d.stopping.Store(true)
	d.logf("stopping api and aggregators (SIGTERM)")
	if err := d.api.Stop(30 * time.Second); err != nil {
		d.problem("%v", err)
	}
	var wg sync.WaitGroup
	for _, a := range d.aggs {
		wg.Go(func() {
			if err := a.Stop(60 * time.Second); err != nil {
				d.problem("%v", err)
			}
		})
	}
	wg.Wait()
}

// killAll kills whatever still runs.
func (d *driver) killAll() {
	d.stopping.Store(true)
	if d.api != nil {
		d.api.Kill()
	}
	for _, a := range d.aggs {
		a.Kill()
	}
}

// waitTransactions waits until no transaction is open on the run's topics,
// so read_committed readers see everything (a SIGKILLed exactly-once
// aggregator leaves one open until it times out).
func (d *driver) waitTransactions(ctx context.Context, obs *Observer, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	start := time.Now()
	for {
		n, err := obs.OpenTransactions(d.in, d.outT, d.dlq)
		if err == nil && n == 0 {
			if w := time.Since(start); w > time.Second {
				d.logf("open transactions ended after %v", w.Round(100*time.Millisecond))
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("transactions still open on %d partitions after %v (last error %v)", n, timeout, err)
		}
		if !sleep(ctx, 500*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// maxLateRuns caps the runs of late records printed.
const maxLateRuns = 24

func (d *driver) printReport(gs GenStats, r *Report) {
	d.logf("topic1: %d records; all %d acknowledged emojis checked; %d of the %d failed emojis reached topic1 anyway (at-least-once: allowed)",
		r.Topic1, r.Acked, r.FailedInTopic1, r.Failed)
	d.logf("DLQ: %d records, %d distinct late records (not counted)", r.DLQRecords, r.Late)
	d.logf("topic2: %d results (%d identical repeats) checked against %d (window, emoji) counts of %d emojis in %d windows",
		r.Topic2, r.Repeats, r.Pairs, r.Counted, r.Windows)
	if r.Late > 0 {
		d.logf("late records: %d of acknowledged emojis, %d of failed requests; by topic1 offsets:", r.LateAcked, r.Late-r.LateAcked)
		for i, lr := range r.LateRuns {
			if i == maxLateRuns {
				d.logf("  ... %d more runs", len(r.LateRuns)-i)
				break
			}
			d.logf("  %s", lr)
		}
	}
	if r.Repeats > 0 {
		note := "allowed: at-least-once output"
		switch {
		case d.cfg.Scenario == ScenarioRebalance:
			note = "see the repeats by phase below"
		case d.cfg.ExactlyOnce:
			note = "WARNING: with --exactly-once, docs/design.md promises read_committed consumers see every record once"
		}
		d.logf("topic2 repeats: %d identical results written again (%s); for example:", r.Repeats, note)
		for _, ex := range r.RepeatEx {
			d.logf("  %s", ex)
		}
	}
	if r.LateInTime > 0 && !d.cfg.StrictLate {
		d.logf("WARNING: %d late records were acknowledged at least %v before timestamp + grace, so they were in Kafka in time; an aggregator closed windows before it had caught up with its input (-strict-late makes this a failure). For example:",
			r.LateInTime, InTimeMargin)
		for _, ex := range r.LateInTimeEx {
			d.logf("  %s", ex)
		}
	}
	for _, p := range r.Problems {
		d.logf("PROBLEM: %s", p)
	}
	if r.ProblemsOmitted > 0 {
		d.logf("... and %d more problems of the kinds above", r.ProblemsOmitted)
	}
}

// cleanup stops everything the run started. A failed run keeps its work dir
// and a copy of the broker's log.
func (d *driver) cleanup(passed bool) {
	d.killAll()
	if d.kafka != nil {
		keep := ""
		if !passed && d.work != "" {
			keep = filepath.Join(d.work, "kafka-server.log")
		}
		if err := d.kafka.Down(keep); err != nil {
			d.logf("stopping Kafka: %v", err)
		}
	}
	if passed && !d.cfg.Keep && d.cfg.WorkDir == "" && d.work != "" {
		_ = os.RemoveAll(d.work)
	}
}

// verdict prints the summary and the one verdict line; it returns the exit
// code.
func (d *driver) verdict(r *Report, runErr error, passed bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.cfg
	var down []string
	for _, t := range d.brokerDown {
		down = append(down, t.Round(100*time.Millisecond).String())
	}
	took := time.Since(d.start).Round(time.Second)
	var faults, what string
	if c.Scenario == ScenarioRebalance {
		figures := "no repeat figures (the run ended early)"
		if d.rebal != nil {
			figures = d.rebal.String()
		}
		d.logf("rebalance: %s", figures)
		faults = fmt.Sprintf("%s; mode=%s", figures, c.Mode())
		what = fmt.Sprintf("rebalance scenario, %d emojis", d.sent)
	} else if c.Scenario == ScenarioFailover {
		faults = fmt.Sprintf("%d trials of each failover kind (figures above); mode=%s", c.Trials, c.Mode())
		what = fmt.Sprintf("failover scenario, %d emojis", d.sent)
	} else {
		d.logf("faults injected: %d aggregator SIGKILLs (restarted), %d aggregator stopped, %d broker restarts (away %s), %d API SIGKILLs (restarted); %d unexpected exits",
			d.counts[FaultKillAggregator], d.counts[FaultStopAggregator], d.counts[FaultRestartBroker], strings.Join(down, ", "),
			d.counts[FaultKillAPI], d.unexpected)
		faults = fmt.Sprintf("%d SIGKILLs, %d stopped, %d broker restart%s, %d API SIGKILL%s, mode=%s",
			d.counts[FaultKillAggregator], d.counts[FaultStopAggregator], d.counts[FaultRestartBroker], plural(d.counts[FaultRestartBroker]),
			d.counts[FaultKillAPI], plural(d.counts[FaultKillAPI]), c.Mode()) + d.clusterFaultText()
		what = fmt.Sprintf("%d emojis", c.Emojis)
	}
	if passed {
		fmt.Fprintf(d.out, "SMOKE PASS: %s, %d windows exact, %s (%v)\n", what, r.Windows, faults, took)
		return 0
	}
	var why []string
	if errors.Is(runErr, context.Canceled) {
		runErr = errors.New("interrupted")
	}
	if runErr != nil {
		why = append(why, oneLine(runErr.Error()))
	}
	why = append(why, d.problems...)
	n := len(d.problems)
	if r != nil {
		why = append(why, r.Problems...)
		n += r.NumProblems()
	}
	first := ""
	if len(why) > 0 {
		first = why[0]
	}
	if runErr != nil {
		n++
	}
	fmt.Fprintf(d.out, "SMOKE FAIL: %d problem%s (first: %s); %s, %s (%v); logs in %s\n",
		n, plural(n), oneLine(first), what, faults, took, d.work)
	return 1
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// sleep waits for d or until ctx ends; it tells whether the time passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// freeAddr returns a free loopback address.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitHealthy polls url until it answers 200.
func waitHealthy(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return err
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}
