package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/bench/internal/harness"
	"github.com/emostream/emostream/examples/emostream/load"
)

// The window and grace of both stacks (EmoStream's defaults; Spark's
// watermark delay is the grace).
const (
	window = 2 * time.Second
	grace  = 500 * time.Millisecond
)

// marker is the emoji of the start-up probes and the count phase's tail: not
// one of the load client's, and left out of the count check.
const marker = "🐢"

// stack is one system under test.
type stack struct {
	name         string
	in, out, dlq string
	brokers      []string
	logDir, bin  string
	env          *seedEnv
	procs        []*harness.Proc
	api          string // base URL
	checkpoint   string // Spark's
	startedAt    time.Time
}

// start launches the stack's processes.
func (s *stack) start() error {
	addr, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	s.api = "http://" + addr
	b := strings.Join(s.brokers, ",")
	log := func(role string) string { return filepath.Join(s.logDir, "seed-"+s.name+"-"+role+".log") }
	var specs []struct {
		name, bin, log string
		args           []string
	}
	add := func(name, bin, log string, args ...string) {
		specs = append(specs, struct {
			name, bin, log string
			args           []string
		}{name, bin, log, args})
	}
	switch s.name {
	case "seed":
		host, port, _ := strings.Cut(addr, ":")
		dir := filepath.Dir(s.env.ivySettings)
		s.checkpoint, err = os.MkdirTemp("", "emostream-seed-checkpoint-")
		if err != nil {
			return err
		}
		src := func(f string) string { return filepath.Join(filepathRoot(), "bench", "seed", f) }
		add("flask server.py", s.env.python, log("flask"), src("server.py"),
			"--brokers", b, "--topic", s.in, "--host", host, "--port", port)
		add("spark_agg.py", s.env.python, log("spark"), src("spark_agg.py"),
			"--brokers", b, "--input", s.in, "--output", s.out, "--checkpoint", s.checkpoint,
			"--ivy-settings", s.env.ivySettings, "--ivy-dir", filepath.Join(dir, "ivy"))
	case "ours":
		aggHTTP, err := harness.FreeAddr()
		if err != nil {
			return err
		}
		add("emostream api", s.bin, log("api"), "api", "--brokers", b, "--http", addr, "--input-topic", s.in)
		add("emostream aggregate", s.bin, log("aggregate"), "aggregate", "--brokers", b, "--http", aggHTTP,
			"--input-topic", s.in, "--output-topic", s.out, "--dlq-topic", s.dlq)
	}
	s.startedAt = time.Now()
	for _, sp := range specs {
		p, err := harness.Start(sp.name, sp.bin, sp.args, sp.log)
		if err != nil {
			return err
		}
		s.procs = append(s.procs, p)
	}
	return nil
}

// stop stops the processes (SIGTERM, then SIGKILL) and any descendant they
// left behind.
func (s *stack) stop(t *tree) []string {
	var problems []string
	left := t.members()
	for _, p := range s.procs {
		if err := p.Stop(30 * time.Second); err != nil {
			problems = append(problems, err.Error())
		}
	}
	for _, pid := range left {
		if _, ok := ppid(pid); ok && !s.isRoot(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if s.checkpoint != "" {
		_ = os.RemoveAll(s.checkpoint)
	}
	return problems
}

func (s *stack) isRoot(pid int) bool {
	for _, p := range s.procs {
		if p.Pid() == pid {
			return true
		}
	}
	return false
}

func (s *stack) exited() error {
	for _, p := range s.procs {
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited early; its log: %s\n%s", p.Name, p.Log, p.Tail(2000))
		default:
		}
	}
	return nil
}

// rootDir is the module root, set by measure.
var rootDir string

func filepathRoot() string { return rootDir }

// result is a topic2 value (the contract's, written by both stacks).
type result struct {
	WindowStart int64  `json:"window_start"`
	WindowEnd   int64  `json:"window_end"`
	EmojiType   string `json:"emoji_type"`
	Count       int64  `json:"count"`
	Bursts      int64  `json:"bursts"`
}

type received struct {
	result
	at time.Time
}

// resultReader consumes every partition of an output topic from the start.
type resultReader struct {
	consumer sarama.Consumer
	parts    []sarama.PartitionConsumer
	mu       sync.Mutex
	got      []received
	bad      int
	first    chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

func newResultReader(brokers []string, topic string) (*resultReader, error) {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.ClientID = "emostream-bench-seed"
	sc.Consumer.MaxWaitTime = 50 * time.Millisecond
	c, err := sarama.NewConsumer(brokers, sc)
	if err != nil {
		return nil, err
	}
	parts, err := c.Partitions(topic)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	rr := &resultReader{consumer: c, first: make(chan struct{})}
	for _, p := range parts {
		// A topic just created may not have a leader everywhere yet.
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		for try := 0; err != nil && try < 40; try++ {
			time.Sleep(250 * time.Millisecond)
			pc, err = c.ConsumePartition(topic, p, sarama.OffsetOldest)
		}
		if err != nil {
			rr.close()
			return nil, err
		}
		rr.parts = append(rr.parts, pc)
		rr.wg.Go(func() {
			for m := range pc.Messages() {
				now := time.Now()
				var v result
				rr.mu.Lock()
				if err := json.Unmarshal(m.Value, &v); err != nil {
					rr.bad++
				} else {
					rr.got = append(rr.got, received{v, now})
				}
				rr.mu.Unlock()
				rr.once.Do(func() { close(rr.first) })
			}
		})
	}
	return rr, nil
}

func (rr *resultReader) snapshot() ([]received, int) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return append([]received(nil), rr.got...), rr.bad
}

// close stops the partition consumers (which ends their loops), then the
// consumer.
func (rr *resultReader) close() {
	for _, pc := range rr.parts {
		pc.AsyncClose()
	}
	rr.wg.Wait()
	_ = rr.consumer.Close()
}

// item is one emoji of the count phase: sent at (and stamped with) base+at.
type item struct {
	at    time.Duration
	emoji string
	user  string
}

// makeSchedule is the count phase's emojis: rate per second for d, emojis
// drawn (fixed seed) from the load client's list.
func makeSchedule(rate int, d time.Duration) []item {
	rng := rand.New(rand.NewPCG(13, 6))
	emojis := load.DefaultEmojis()
	n := int(d.Seconds() * float64(rate))
	out := make([]item, n)
	for i := range out {
		out[i] = item{
			at:    time.Duration(i) * time.Second / time.Duration(rate),
			emoji: emojis[rng.IntN(len(emojis))],
			user:  "user-" + strconv.Itoa(rng.IntN(10000)),
		}
	}
	return out
}

// poster sends single emojis over keep-alive connections.
type poster struct {
	client *http.Client
	url    string
}

func newPoster(base string, conns int) *poster {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute}
	return &poster{client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, url: base + "/api"}
}

func (p *poster) post(ctx context.Context, emoji, user string, ts time.Time) (int, error) {
	body := fmt.Sprintf(`{"user_id":%q,"emoji_type":%q,"timestamp":%d}`, user, emoji, ts.UnixMilli())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode, nil
}

// measure runs the three phases on one stack.
func measure(ctx context.Context, st *stack, sched []item, o *options) (systemResult, error) {
	rootDir, _ = harness.ModuleRoot()
	res := systemResult{Name: st.name}
	switch st.name {
	case "seed":
		res.Stack = "Flask dev server + kafka-python (server.py), PySpark 4.2.0 Structured Streaming local[*] (spark_agg.py)"
	default:
		res.Stack = "emostream api + emostream aggregate"
	}
	rr, err := newResultReader(st.brokers, st.out)
	if err != nil {
		return res, err
	}
	defer rr.close()
	logf("%s: starting %s", st.name, res.Stack)
	if err := st.start(); err != nil {
		return res, err
	}
	roots := make([]int, len(st.procs))
	for i, p := range st.procs {
		roots[i] = p.Pid()
	}
	t := newTree(roots, 200*time.Millisecond)
	stopped := false
	defer func() {
		if !stopped {
			st.stop(t)
			t.stop()
		}
	}()

	// 1. Start-up: probes every 50 ms until the first result.
	p := newPoster(st.api, 8)
	probeCtx, stopProbes := context.WithCancel(ctx)
	apiReady := make(chan time.Time, 1)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		readySent := false
		for i := 0; ; i++ {
			select {
			case <-probeCtx.Done():
				return
			case <-tick.C:
			}
			code, err := p.post(probeCtx, marker, "probe", time.Now())
			if err == nil && code == http.StatusAccepted && !readySent {
				apiReady <- time.Now()
				readySent = true
			}
		}
	}()
	deadline := time.NewTimer(o.startup)
	defer deadline.Stop()
	wait := time.NewTicker(200 * time.Millisecond)
	defer wait.Stop()
waitFirst:
	for {
		select {
		case <-rr.first:
			break waitFirst
		case <-ctx.Done():
			stopProbes()
			return res, ctx.Err()
		case <-deadline.C:
			stopProbes()
			return res, fmt.Errorf("no result within %v of the start", o.startup)
		case <-wait.C:
			if err := st.exited(); err != nil {
				stopProbes()
				return res, err
			}
		}
	}
	stopProbes()
	got, _ := rr.snapshot()
	res.FirstResultSeconds = harness.Round(got[0].at.Sub(st.startedAt).Seconds(), 2)
	select {
	case at := <-apiReady:
		res.APIReadySeconds = harness.Round(at.Sub(st.startedAt).Seconds(), 2)
	default:
	}
	res.CPUSeconds.Startup = harness.Round(t.cpuSeconds(), 2)
	logf("%s: API answered after %.2f s, first result after %.2f s", st.name, res.APIReadySeconds, res.FirstResultSeconds)

	// 2. Counts and delay.
	cpu0 := t.cpuSeconds()
	counts, err := countPhase(ctx, st, rr, sched, o)
	if err != nil {
		return res, err
	}
	res.Counts = counts
	res.CPUSeconds.Counts = harness.Round(t.cpuSeconds()-cpu0, 2)
	logf("%s: counts match the schedule: %v (%d of %d results); delay after window_end p50 %.0f ms, p99 %.0f ms",
		st.name, counts.Matches, counts.Matching, counts.ExpectedResults, counts.DelayMS.P50, counts.DelayMS.P99)

	// 3. Ingest.
	if o.warmup > 0 {
		if _, err := runLoad(ctx, load.Config{Target: st.api, Clients: o.clients, Batch: 1, Duration: o.warmup}, nil); err != nil &&
			!errors.Is(err, load.ErrNothingAccepted) {
			return res, fmt.Errorf("ingest warm-up: %w", err)
		}
	}
	logf("%s: ingest, %d connections, single-emoji POSTs, %v...", st.name, o.clients, o.ingestDur)
	cpu0 = t.cpuSeconds()
	s, err := runLoad(ctx, load.Config{Target: st.api, Clients: o.clients, Batch: 1, Duration: o.ingestDur}, os.Stderr)
	if err != nil && !errors.Is(err, load.ErrNothingAccepted) {
		return res, fmt.Errorf("ingest: %w", err)
	}
	res.CPUSeconds.Ingest = harness.Round(t.cpuSeconds()-cpu0, 2)
	res.Ingest = ingestResult{
		ElapsedSeconds: harness.Round(s.Elapsed.Seconds(), 3), Requests: s.Requests, Accepted: s.Accepted,
		Errors: s.Errors, P50MS: msOf(s.P50), P99MS: msOf(s.P99), MaxMS: msOf(s.Max),
	}
	if secs := s.Elapsed.Seconds(); secs > 0 {
		res.Ingest.RequestsPerSecond = harness.Round(float64(s.Requests)/secs, 0)
		res.Ingest.AcceptedPerSecond = harness.Round(float64(s.Accepted)/secs, 0)
	}

	res.CPUSeconds.Total = harness.Round(t.cpuSeconds(), 2)
	pss, rss := t.peakMiB()
	res.PeakPSSMiB, res.PeakRSSMiB = harness.Round(pss, 1), harness.Round(rss, 1)
	res.Processes = t.processes()
	comm, peak := t.largest()
	res.Largest = largestProc{Command: comm, PeakRSSMiB: harness.Round(peak, 1)}
	res.Problems = st.stop(t)
	t.stop()
	stopped = true
	return res, nil
}

// countPhase sends the schedule from the next window boundary, then the
// tail, and checks the results.
func countPhase(ctx context.Context, st *stack, rr *resultReader, sched []item, o *options) (countResult, error) {
	var c countResult
	base := time.Now().Add(2 * time.Second).Truncate(window).Add(window)
	end := base.Add(o.countDur)
	// Enough connections that the sender keeps to the schedule on a busy
	// machine: an emoji sent later than its timestamp by more than the
	// grace may be late for both stacks.
	const senders = 32
	p := newPoster(st.api, senders)
	var mu sync.Mutex
	expected := map[[2]string]int64{}
	var maxLag time.Duration
	jobs := make(chan item)
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for it := range jobs {
				ts := base.Add(it.at)
				time.Sleep(time.Until(ts))
				lag := time.Since(ts)
				code, err := p.post(ctx, it.emoji, it.user, ts)
				ws := ts.UnixMilli() / window.Milliseconds() * window.Milliseconds()
				ok := err == nil && code == http.StatusAccepted
				mu.Lock()
				maxLag = max(maxLag, lag)
				if it.emoji != marker {
					c.Sent++
				}
				switch {
				case it.emoji == marker: // the tail: not counted
				case ok:
					c.Accepted++
					expected[[2]string{strconv.FormatInt(ws-base.UnixMilli(), 10), it.emoji}]++
				default:
					c.Errors++
				}
				mu.Unlock()
			}
		})
	}
	for _, it := range sched {
		select {
		case jobs <- it:
		case <-ctx.Done():
			close(jobs)
			wg.Wait()
			return c, ctx.Err()
		}
	}
	// The tail: markers at 20/s, stamped now, so Spark's watermark moves on.
	tailEnd := end.Add(o.tail)
	for ts := end; ts.Before(tailEnd); ts = ts.Add(50 * time.Millisecond) {
		jobs <- item{at: ts.Sub(base), emoji: marker, user: "tail"}
	}
	close(jobs)
	wg.Wait()
	c.ExpectedResults = len(expected)
	c.MaxSendLagMS = msOf(maxLag)
	c.Windows = int(o.countDur / window)

	// Wait until every expected result arrived (or -result-wait).
	want := func(r received) bool {
		ws := time.UnixMilli(r.WindowStart)
		return r.EmojiType != marker && !ws.Before(base) && ws.Before(end)
	}
	deadline := time.Now().Add(o.resultWait)
	var got []received
	for {
		got, c.BadValues = rr.snapshot()
		n := 0
		for _, r := range got {
			if want(r) {
				n++
			}
		}
		if n >= len(expected) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(time.Second) // late duplicates
	got, c.BadValues = rr.snapshot()

	seen := map[[2]string]int64{}
	var delays []time.Duration
	for _, r := range got {
		if !want(r) {
			continue
		}
		k := [2]string{strconv.FormatInt(r.WindowStart-base.UnixMilli(), 10), r.EmojiType}
		if prev, dup := seen[k]; dup {
			c.Duplicates++
			if prev != r.Count {
				c.Conflicting++
			}
			continue
		}
		seen[k] = r.Count
		delays = append(delays, r.at.Sub(time.UnixMilli(r.WindowEnd)))
		if r.WindowEnd-r.WindowStart != window.Milliseconds() {
			c.WrongWindow++
		}
	}
	for k, n := range expected {
		got, ok := seen[k]
		switch {
		case !ok:
			c.Missing++
		case got != n:
			c.WrongCount++
		default:
			c.Matching++
		}
	}
	for k := range seen {
		if _, ok := expected[k]; !ok {
			c.Unexpected++
		}
	}
	c.DelayMS = harness.Summarise(delays)
	c.Matches = c.Errors == 0 && c.Matching == len(expected) && c.Unexpected == 0 && c.Conflicting == 0 && c.WrongWindow == 0
	c.counts = seen
	return c, nil
}

func runLoad(ctx context.Context, cfg load.Config, progress io.Writer) (load.Summary, error) {
	cfg.Progress = progress
	c, err := load.New(cfg)
	if err != nil {
		return load.Summary{}, err
	}
	err = c.Run(ctx)
	return c.Summary(), err
}

func msOf(d time.Duration) float64 { return harness.Round(float64(d)/float64(time.Millisecond), 2) }
