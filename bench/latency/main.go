// Command latency measures EmoStream's end-to-end latency (issue #6): how
// long after a window closes its results reach a dashboard viewer.
//
//	go run ./bench/latency                                   # embedded broker, 60 s
//	go run ./bench/latency -brokers 127.0.0.1:29092 -duration 20s
//
// It builds the emostream binary and starts `emostream run` as a child
// process (embedded broker by default; with -brokers on that Kafka, with
// topic names unique to the run, deleted again at the end), subscribes to the
// dashboard's Server-Sent Events stream (GET /events), and POSTs emojis
// stamped with the current time at a steady rate (default 2000 emojis/s in
// batches of 10). For every window result it receives it records
//
//	latency = SSE receive time − (window_end + grace)
//
// the time beyond the unavoidable wait for the window to close, and for every
// request the POST→202 latency. It checks that each (window, emoji) count on
// the stream equals the number of emojis the API accepted (202) with a
// timestamp in that window, prints percentiles and writes
// bench/results/latency.json (schema in bench/README.md).
//
// The exit status is 1 if the pipeline failed or a count did not match, 0
// otherwise (a missed latency target is reported, not an error).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emostream/emostream/bench/internal/harness"
	"github.com/emostream/emostream/examples/emostream/load"
	"github.com/emostream/emostream/examples/emostream/wire"
)

const prog = "latency"

// warmupEmoji is sent before the measurement until its window result comes
// back; it is not one of the measured emojis, so its counts do not mix with
// theirs.
const warmupEmoji = "🐢"

type options struct {
	brokers     []string
	duration    time.Duration
	rate        float64
	batch       int
	clients     int
	window      time.Duration
	grace       time.Duration
	partitions  int
	settle      time.Duration
	target      time.Duration
	exactlyOnce bool
	bin         string
	out         string
	logDir      string
	startup     time.Duration
	viewers     int
	capFlag     bool
	cpuprofile  string
}

func parseFlags(root string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench/latency [flags]\n\nMeasures how long after window_end + grace EmoStream's window results reach /events,\nand POST->202 latency, and writes %s. Flags:\n", o.out)
		fs.PrintDefaults()
	}
	brokers := fs.String("brokers", "", "bootstrap `list` of a real Kafka (e.g. 127.0.0.1:29092); empty: emostream's embedded broker")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "how long to send")
	fs.Float64Var(&o.rate, "rate", 2000, "emojis per second")
	fs.IntVar(&o.batch, "batch", 10, "emojis per request (1 to 1000)")
	fs.IntVar(&o.clients, "clients", 16, "concurrent keep-alive connections")
	fs.DurationVar(&o.window, "window", 2*time.Second, "emostream --window")
	fs.DurationVar(&o.grace, "grace", 500*time.Millisecond, "emostream --grace")
	fs.IntVar(&o.partitions, "partitions", 4, "emostream --partitions")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "how long to wait for results after the last window's end + grace")
	fs.DurationVar(&o.target, "target", 200*time.Millisecond, "the p99 target for results beyond window_end + grace")
	fs.BoolVar(&o.exactlyOnce, "exactly-once", false, "run the aggregator with --exactly-once")
	fs.StringVar(&o.bin, "bin", "", "a prebuilt emostream `binary` (default: go build ./examples/emostream)")
	fs.StringVar(&o.out, "out", "", "where to write the results (default bench/results/latency.json, with -viewers bench/results/viewers.json)")
	fs.IntVar(&o.viewers, "viewers", 0, "open this many more /events streams (emostream gets --max-viewers to match) and check that every one gets every result in time")
	fs.BoolVar(&o.capFlag, "max-viewers-flag", true, "with -viewers, pass --max-viewers (false for a -bin older than the flag)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of this process (the subscriber, the -viewers crowd and the sender) during the measurement to `file`")
	fs.StringVar(&o.logDir, "logs", filepath.Join(root, "bench", "results"), "`directory` for the emostream log (latency-emostream.log)")
	fs.DurationVar(&o.startup, "startup-timeout", 90*time.Second, "how long emostream may take to become healthy and produce a first result")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.brokers = harness.SplitList(*brokers)
	if o.out == "" {
		name := "latency.json"
		if o.viewers > 0 {
			name = "viewers.json"
		}
		o.out = filepath.Join(root, "bench", "results", name)
	}
	var errs []error
	switch {
	case o.duration < o.window:
		errs = append(errs, fmt.Errorf("-duration must be at least one window (%v)", o.window))
	case o.rate <= 0:
		errs = append(errs, errors.New("-rate must be positive"))
	case o.batch < 1 || o.batch > 1000:
		errs = append(errs, errors.New("-batch must be 1 to 1000"))
	case o.clients < 1:
		errs = append(errs, errors.New("-clients must be positive"))
	case o.window < time.Millisecond || o.window%time.Millisecond != 0:
		errs = append(errs, errors.New("-window must be a whole number of milliseconds"))
	case o.grace < 0:
		errs = append(errs, errors.New("-grace must not be negative"))
	case o.partitions < 1:
		errs = append(errs, errors.New("-partitions must be positive"))
	case o.viewers < 0:
		errs = append(errs, errors.New("-viewers must not be negative"))
	}
	return o, errors.Join(errs...)
}

func main() { harness.Main(prog, parseFlags, run) }

func logf(format string, args ...any) { harness.Logf(prog, format, args...) }

// run does the measurement; ok is false when the counts did not match.
func run(ctx context.Context, root string, o *options) (ok bool, err error) {
	emojis := load.DefaultEmojis()
	if slices.Contains(emojis, warmupEmoji) || !wire.ValidEmoji(warmupEmoji) {
		return false, fmt.Errorf("warm-up emoji %q must be valid and not a measured one", warmupEmoji)
	}
	if err := os.MkdirAll(o.logDir, 0o755); err != nil {
		return false, err
	}
	bin, cleanup, err := harness.Emostream(prog, root, o.bin, "emostream-latency-")
	defer cleanup()
	if err != nil {
		return false, err
	}

	httpAddr, err := harness.FreeAddr()
	if err != nil {
		return false, err
	}
	args := []string{"run", "--http", httpAddr,
		"--window", o.window.String(), "--grace", o.grace.String(),
		"--partitions", strconv.Itoa(o.partitions)}
	if o.exactlyOnce {
		args = append(args, "--exactly-once")
	}
	if o.viewers > 0 && o.capFlag {
		args = append(args, "--max-viewers", strconv.Itoa(o.viewers+16))
	}
	brokerDesc := "embedded (emostream run)"
	if len(o.brokers) > 0 {
		// Topic names unique to this run: the broker may be shared, and the
		// aggregator's application id (and so its group and internal
		// topics) derives from the input topic.
		prefix := "emostream-latency-" + harness.RunID() + "-"
		args = append(args, "--brokers", strings.Join(o.brokers, ","),
			"--input-topic", prefix+"topic1", "--output-topic", prefix+"topic2", "--dlq-topic", prefix+"topic1.dlq")
		brokerDesc = "Kafka " + strings.Join(o.brokers, ",")
		defer func() {
			n, err := harness.DeleteByPrefix(o.brokers, prefix, "emostream-aggregator-"+prefix)
			if err != nil {
				logf("cleanup: %v", err)
			}
			logf("cleanup: deleted %d topics of this run", n)
		}()
	} else {
		brokerAddr, err := harness.FreeAddr()
		if err != nil {
			return false, err
		}
		args = append(args, "--broker-listen", brokerAddr)
	}

	logPath := filepath.Join(o.logDir, "latency-emostream.log")
	logf("starting emostream %s (log: %s)", strings.Join(args, " "), logPath)
	startedAt := time.Now()
	proc, err := harness.Start("emostream run", bin, args, logPath)
	if err != nil {
		return false, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = proc.Stop(30 * time.Second)
		}
	}()
	base := "http://" + httpAddr
	if err := harness.WaitHealthy(ctx, proc, base+"/healthz", o.startup); err != nil {
		return false, err
	}
	healthy := time.Since(startedAt)
	logf("healthy after %.1fs", healthy.Seconds())

	sseCtx, sseCancel := context.WithCancel(ctx)
	defer sseCancel()
	sub, err := subscribe(sseCtx, base+"/events", warmupEmoji)
	if err != nil {
		return false, err
	}
	var (
		crowdOf            *crowd
		rssBefore, rssWith float64
	)
	if o.viewers > 0 {
		rssBefore, _ = rssMB(proc.Pid())
		logf("opening %d more viewers...", o.viewers)
		began := time.Now()
		crowdOf = openCrowd(sseCtx, base+"/events", o.viewers)
		logf("%d viewers open after %.1fs (%d refused, %d failed)", len(crowdOf.viewers), time.Since(began).Seconds(),
			crowdOf.refused.Load(), crowdOf.failed.Load())
		time.Sleep(time.Second)
		rssWith, _ = rssMB(proc.Pid())
	}
	snd := newSender(base+"/api", o.clients, emojis, o.batch, o.window)

	// Warm-up: until a result comes back the aggregator may not have
	// joined its group yet, and records it reads late would be late.
	logf("warming up: sending %s until its window result arrives on /events...", warmupEmoji)
	wctx, wcancel := context.WithCancel(ctx)
	go snd.warmUp(wctx, warmupEmoji, 50*time.Millisecond)
	select {
	case <-sub.seen:
	case <-proc.Exited():
		wcancel()
		return false, fmt.Errorf("emostream exited during warm-up: %v\n%s", proc.Stop(0), proc.Tail(2000))
	case <-time.After(o.startup):
		wcancel()
		return false, fmt.Errorf("no window result on /events %v after start (log: %s)", o.startup, logPath)
	case <-ctx.Done():
		wcancel()
		return false, ctx.Err()
	}
	wcancel()
	firstResult := time.Since(startedAt)
	logf("first result after %.1fs", firstResult.Seconds())

	// Start the measurement at a window boundary, so every measured window
	// holds measured emojis only.
	wms := o.window.Milliseconds()
	now := time.Now().UnixMilli()
	startWindow := now - now%wms + wms
	select {
	case <-time.After(time.Until(time.UnixMilli(startWindow))):
	case <-ctx.Done():
		return false, ctx.Err()
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return false, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return false, err
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
			logf("wrote this process's CPU profile to %s", o.cpuprofile)
		}()
	}
	lateBefore, _ := scrapeMetric(base+"/metrics", "stream_dead_letters_total", `reason="late"`)
	fanoutBefore, _ := scrapeHistogram(base+"/metrics", fanoutMetric)
	arrivedBefore, _ := scrapeHistogram(base+"/metrics", arrivedMetric)
	cpuBefore, _ := proc.CPUSeconds()
	selfBefore := harness.SelfCPUSeconds()
	logf("sending %.0f emojis/s in batches of %d from %d clients for %v...", o.rate, o.batch, o.clients, o.duration)
	sendStart := time.Now()
	sctx, scancel := context.WithTimeout(ctx, o.duration)
	snd.run(sctx, o.rate, o.clients)
	scancel()
	sendElapsed := time.Since(sendStart)
	if ctx.Err() != nil {
		return false, ctx.Err()
	}

	// Wait for the last window with data to close and its results to come.
	snd.mu.Lock()
	lastWindow := snd.windowOf(snd.lastTS)
	snd.mu.Unlock()
	closeAt := time.UnixMilli(lastWindow + wms).Add(o.grace).Add(o.settle)
	logf("sent; waiting %.1fs for the last window to close and its results...", time.Until(closeAt).Seconds())
	select {
	case <-time.After(time.Until(closeAt)):
	case <-ctx.Done():
		return false, ctx.Err()
	}
	cpuAfter, _ := proc.CPUSeconds()
	selfAfter := harness.SelfCPUSeconds()
	rss, _ := proc.PeakRSSMB()
	lateAfter, lateErr := scrapeMetric(base+"/metrics", "stream_dead_letters_total", `reason="late"`)
	fanoutAfter, fanoutErr := scrapeHistogram(base+"/metrics", fanoutMetric)
	arrivedAfter, arrivedErr := scrapeHistogram(base+"/metrics", arrivedMetric)
	brokeEarly := 0
	if crowdOf != nil {
		brokeEarly = crowdOf.ended()
	}
	// Read the streams before ending them: the end is not a failure.
	arrivals, badEvents, sseErr := sub.snapshot()
	sseCancel()
	stopped = true
	stopErr := proc.Stop(30 * time.Second)

	r := analyse(o, snd, arrivals, startWindow, lastWindow)
	r.RunInfo = harness.NewRunInfo(brokerDesc)
	r.Sent.Elapsed = harness.Round(sendElapsed.Seconds(), 3)
	r.Startup = startupInfo{HealthySeconds: harness.Round(healthy.Seconds(), 2), FirstResultSeconds: harness.Round(firstResult.Seconds(), 2)}
	r.Process = processInfo{CPUSeconds: harness.Round(cpuAfter-cpuBefore, 2), PeakRSSMB: harness.Round(rss, 1),
		BenchCPUSeconds: harness.Round(selfAfter-selfBefore, 2)}
	r.Check.BadEvents = badEvents
	if lateErr == nil {
		r.Check.LateRecords = int64(lateAfter - lateBefore)
	} else {
		r.Check.LateRecords = -1
	}
	var problems []string
	if sseErr != nil {
		problems = append(problems, "event stream broke: "+sseErr.Error())
	}
	if stopErr != nil {
		problems = append(problems, "emostream: "+stopErr.Error())
	}
	if crowdOf != nil {
		vi := analyseCrowd(crowdOf, o.viewers, brokeEarly, r.measured, o.grace, o.target, sendStart.Add(sendElapsed))
		vi.RSSBeforeMB, vi.RSSAfterMB = harness.Round(rssBefore, 1), harness.Round(rssWith, 1)
		if arrivedErr == nil {
			a := arrivedAfter.since(arrivedBefore).summary()
			vi.ServerArrived = &a
		}
		if fanoutErr == nil {
			f := fanoutAfter.since(fanoutBefore).summary()
			vi.ServerFanout = &f
		}
		if vi.Connected > 0 {
			vi.PerViewerKB = harness.Round((rssWith-rssBefore)*1024/float64(vi.Connected), 1)
		}
		r.Viewers = &vi
		if vi.Connected != o.viewers || vi.Complete != o.viewers {
			problems = append(problems, fmt.Sprintf("%d of %d viewers connected, %d complete", vi.Connected, o.viewers, vi.Complete))
		}
	}
	r.Problems = problems
	r.Check.CountsMatch = r.Check.Missing == 0 && r.Check.WrongCount == 0 && r.Check.Unexpected == 0 &&
		r.Check.Conflicting == 0 && r.Check.Checked > 0
	r.print(os.Stdout)
	if err := harness.WriteJSON(o.out, r); err != nil {
		return false, err
	}
	logf("wrote %s", o.out)
	return r.Check.CountsMatch && len(problems) == 0, nil
}

// The dashboard's histograms the -viewers report reads: when results reach
// the dashboard, and how long their fan-out to the pooled viewers takes.
const (
	arrivedMetric = "emostream_dashboard_result_latency_seconds"
	fanoutMetric  = "emostream_dashboard_fanout_seconds"
)

// scrapeMetric sums the samples of a Prometheus metric whose label set
// contains match (empty: all of them) at url.
func scrapeMetric(url, name, match string) (float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, res.Status)
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		if match != "" && !strings.Contains(line, match) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, nil // no late record yet: the counter has no sample
	}
	return sum, nil
}
