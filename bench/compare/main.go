// Command compare measures EmoStream's windowed aggregator on our library
// against the same topology in Kafka Streams 4.4.0 and against a plain goka
// processor, on a real Kafka 4.4.0 broker (issue #6). See bench/README.md.
//
//	go run ./bench/compare          # 5,000,000 records
//	QUICK=1 go run ./bench/compare  # 200,000 records
//
// It starts (or reuses, via KAFKA_BROKERS) the broker of
// scripts/kafka-local.sh, writes a topic1 copy of N emoji events (Kafka's
// murmur2 partitioning) ending with one far-future sentinel per partition,
// then runs each engine alone, as its own process, from offset 0, each with
// its own application id and output topic, and measures:
//
//   - wall: from starting the engine's process to the moment the harness's
//     read_committed consumer of the engine's output topic holds a result for
//     every expected (window_start, emoji) pair — the "last window result";
//     for goka, which writes no output topic, to its DONE line (every input
//     record processed and every table write acknowledged by Kafka);
//   - records/s = N / wall (the sentinels are not counted);
//   - CPU seconds of the engine's process up to that moment (/proc/<pid>/stat,
//     all threads), and in total including shutdown (rusage);
//   - peak RSS (VmHWM from /proc/<pid>/status at that moment);
//
// then checks that every engine's set of (window_start, window_end, emoji,
// count, bursts) equals the others' and the counts computed from the
// generated data, prints a table and writes bench/results/latest.json.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/emostream/emostream/bench/internal/harness"
	"github.com/emostream/emostream/examples/emostream/wire"
)

type config struct {
	quick      bool
	records    int
	partitions int
	rate       int
	jitter     int64
	guarantee  string
	commitMs   int
	engines    []string
	runs       int
	warmup     int // records of the unmeasured warm-up round, 0: none
	timeout    time.Duration
	ksThreads  int
	ksStore    string
	ksEmit     string
	ksCache    string
	javaOpts   []string
	cpuprofile bool
	// memprofile: ours writes a heap profile (profile with .heap for
	// .pprof) when it is told to stop, MEMPROFILE=1.
	memprofile bool
	// oursStore is our window store's kind: memory or disk (bench-scale);
	// disk stores live under stateRoot/<application id>.
	oursStore string
	stateRoot string
	// profile is the file name of our engine's CPU profile in resultsDir.
	profile     string
	logPrefix   string // of the engines' log files in resultsDir
	resultsDir  string
	root        string
	startedWall time.Time
}

var allEngines = []string{"ours", "kstreams", "goka", "goka-loopback"}

var labels = map[string]string{
	"ours":          "ours (pkg/stream)",
	"kstreams":      "Kafka Streams 4.4.0",
	"goka":          "goka floor (direct)",
	"goka-loopback": "goka loopback",
}

func loadConfig() (*config, error) {
	c := &config{startedWall: time.Now()}
	c.quick = envBool("QUICK")
	var errs []error
	geti := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s=%q: not a non-negative integer", name, v))
		}
		return n
	}
	defRecords := 5_000_000
	if c.quick {
		defRecords = 200_000
	}
	c.records = geti("RECORDS", defRecords)
	c.partitions = geti("PARTITIONS", 4)
	c.rate = geti("RATE", 2000)
	c.jitter = int64(geti("JITTER_MS", 300))
	c.guarantee = envOr("GUARANTEE", "at_least_once")
	defCommit := 1000
	if c.guarantee == "exactly_once_v2" {
		defCommit = 100
	}
	c.commitMs = geti("COMMIT_MS", defCommit)
	defRuns := 1
	if c.quick {
		defRuns = 3 // short runs are noisy; three cost about a minute
	}
	c.runs = geti("RUNS", defRuns)
	defTimeout := 1800
	if c.quick {
		defTimeout = 300
	}
	c.timeout = time.Duration(geti("TIMEOUT", defTimeout)) * time.Second
	c.ksThreads = geti("KSTREAMS_THREADS", runtime.NumCPU())
	c.ksStore = envOr("KSTREAMS_STORE", "memory")
	c.ksEmit = envOr("KSTREAMS_EMIT", "suppress")
	c.ksCache = os.Getenv("KSTREAMS_CACHE_BYTES")
	c.javaOpts = strings.Fields(os.Getenv("KSTREAMS_JAVA_OPTS"))
	c.cpuprofile = envOr("CPUPROFILE", "1") != "0"
	c.memprofile = envOr("MEMPROFILE", "0") == "1"
	c.oursStore = "memory"
	c.profile = "ours-cpu.pprof"
	c.warmup = geti("WARMUP", 200_000)
	c.engines = allEngines
	if v := os.Getenv("ENGINES"); v != "" {
		c.engines = splitList(v)
	}
	for _, e := range c.engines {
		if !slices.Contains(allEngines, e) {
			errs = append(errs, fmt.Errorf("ENGINES: unknown engine %q (have %s)", e, strings.Join(allEngines, ",")))
		}
	}
	switch {
	case c.records < 1:
		errs = append(errs, errors.New("RECORDS must be positive"))
	case c.partitions < 1 || c.partitions > 1024:
		errs = append(errs, errors.New("PARTITIONS must be 1..1024"))
	case c.rate < 1:
		errs = append(errs, errors.New("RATE must be positive"))
	case c.runs < 1:
		errs = append(errs, errors.New("RUNS must be positive"))
	case c.commitMs < 1:
		errs = append(errs, errors.New("COMMIT_MS must be positive"))
	case c.ksThreads < 1:
		errs = append(errs, errors.New("KSTREAMS_THREADS must be positive"))
	}
	if c.guarantee != "at_least_once" && c.guarantee != "exactly_once_v2" {
		errs = append(errs, fmt.Errorf("GUARANTEE must be at_least_once or exactly_once_v2, got %q", c.guarantee))
	}
	root, err := moduleRoot()
	if err != nil {
		errs = append(errs, err)
	}
	c.root = root
	c.resultsDir = envOr("RESULTS_DIR", filepath.Join(root, "bench", "results"))
	return c, errors.Join(errs...)
}

// measurement is one engine run.
type measurement struct {
	engine      string
	err         string
	wall        float64 // s, start -> last result
	first       float64 // s, start -> first result (engines with an output topic)
	rps         float64
	cpu         float64 // s, to the last result
	cpuTotal    float64 // s, including shutdown
	rss         float64 // MiB, VmHWM at the last result
	rssTotal    float64 // MiB, rusage maxrss including shutdown
	brokerCPU   float64 // s, the broker's CPU during the run (to the last result), -1 unknown
	kafkaWrites int64
	outRecords  int
	dups        int
	conflicts   int
	extra       int
	bad         int
	results     map[rkey]wire.Result
	raw         map[rkey]string
	matches     bool
	logFile     string
}

func (m *measurement) ok() bool { return m.err == "" }

func main() {
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	runFn := run
	if len(os.Args) > 1 && os.Args[1] == "scale" {
		runFn = runScale // bench-scale, see scale.go
	} else if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "compare: unknown argument", os.Args[1], "(the only one is \"scale\")")
		os.Exit(2)
	}
	if err := runFn(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg *config) error {
	setup := map[string]float64{}
	phase := func(name string, fn func() error) error {
		start := time.Now()
		logf("%s...", name)
		err := fn()
		setup[name] = time.Since(start).Seconds()
		if err == nil {
			logf("%s: done in %.1fs", name, setup[name])
		}
		return err
	}
	if err := os.MkdirAll(cfg.resultsDir, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "emostream-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	var br *broker
	if err := phase("kafka", func() (err error) { br, err = startBroker(cfg.root); return err }); err != nil {
		return err
	}
	defer br.stop()
	bins := map[string]string{}
	if err := phase("build", func() error { return buildAll(cfg, work, bins) }); err != nil {
		return err
	}

	var d *dataset
	if err := phase("generate", func() (err error) {
		d, err = newDataset(cfg.records, cfg.partitions, cfg.rate, cfg.jitter)
		return err
	}); err != nil {
		return err
	}
	id := fmt.Sprintf("emostream-bench-%s-", strconv.FormatInt(time.Now().Unix(), 36))
	if !br.started {
		defer br.deleteTopics(id)
	}
	input := id + "topic1"
	logf("data: %d records (+%d sentinels) over %d emojis, %d partitions (records per partition %v), event time %s .. %s (%d windows of 2 s), %d expected results, %d late",
		d.n, d.partitions, len(d.emojis), d.partitions, d.perPart,
		time.UnixMilli(d.first).UTC().Format(time.RFC3339), time.UnixMilli(d.last).UTC().Format(time.RFC3339),
		d.windows(), len(d.expected), d.late)
	if err := phase("internal-topics", func() error { return br.warmUp(cfg.guarantee == "exactly_once_v2") }); err != nil {
		return err
	}
	if err := phase("preload", func() error {
		// The events are months old: without retention.ms=-1 the broker's
		// time-based retention (7 days) would delete them within a minute.
		if err := br.createTopic(input, int32(cfg.partitions), keepForever); err != nil {
			return err
		}
		return br.preload(d, input)
	}); err != nil {
		return err
	}

	// A freshly started broker is slow until its JIT has warmed up, which
	// would penalise whichever engine runs first (ours, which makes the
	// broker write a changelog record per input record, most). One unmeasured
	// round of every engine on a smaller copy of the data warms it.
	if cfg.warmup > 0 {
		if err := phase("warm-up round", func() error {
			dw, err := newDataset(min(cfg.warmup, cfg.records), cfg.partitions, cfg.rate, cfg.jitter)
			if err != nil {
				return err
			}
			wInput := id + "warmup-topic1"
			if err := br.createTopic(wInput, int32(cfg.partitions), keepForever); err != nil {
				return err
			}
			if err := br.preload(dw, wInput); err != nil {
				return err
			}
			for _, e := range cfg.engines {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				m := runEngine(ctx, cfg, br, dw, bins, e, wInput, id+"warmup-")
				if !m.ok() {
					return fmt.Errorf("warm-up run of %s failed: %s (log: %s)", e, m.err, m.logFile)
				}
				logf("warm-up %s: %d records in %.2fs (not counted)", e, dw.n, m.wall)
			}
			return nil
		}); err != nil {
			return err
		}
	}

	all := map[string][]*measurement{}
	for r := 0; r < cfg.runs; r++ {
		// With several runs, each starts with the next engine.
		order := append(slices.Clone(cfg.engines[r%len(cfg.engines):]), cfg.engines[:r%len(cfg.engines)]...)
		for _, e := range order {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			prefix := fmt.Sprintf("%s%d-", id, r)
			m := runEngine(ctx, cfg, br, d, bins, e, input, prefix)
			if m.ok() {
				logf("%s: %d records in %.2fs = %.0f records/s, CPU %.2fs, peak RSS %.0f MiB",
					e, d.n, m.wall, m.rps, m.cpu, m.rss)
			} else {
				logf("%s: FAILED: %s (log: %s)", e, m.err, m.logFile)
			}
			all[e] = append(all[e], m)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return report(cfg, d, all, setup, bins)
}

// buildAll builds our engine and the goka floor with `go build` and the
// Kafka Streams application with Maven (when its jar is older than its
// sources).
func buildAll(cfg *config, work string, bins map[string]string) error {
	goTool := envOr("GO", "go")
	for _, name := range []string{"ours", "goka", "floor"} {
		out := filepath.Join(work, "bench-"+name)
		cmd := exec.Command(goTool, "build", "-o", out, "./bench/"+name)
		cmd.Dir = cfg.root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build ./bench/%s: %w", name, err)
		}
		bins[name] = out
	}
	needKStreams := slices.Contains(cfg.engines, "kstreams")
	if !needKStreams {
		return nil
	}
	dir := filepath.Join(cfg.root, "bench", "kstreams")
	jar := filepath.Join(dir, "target", "kstreams-bench-1.0.0.jar")
	cpFile := filepath.Join(dir, "target", "classpath.txt")
	if stale(jar, cpFile, filepath.Join(dir, "pom.xml"), filepath.Join(dir, "src")) {
		logf("building bench/kstreams with Maven (dependencies from Maven Central on the first run)...")
		logPath := filepath.Join(cfg.resultsDir, "kstreams-mvn.log")
		lf, err := os.Create(logPath)
		if err != nil {
			return err
		}
		cmd := exec.Command("mvn", "-B", "-q", "package")
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = lf, lf
		err = cmd.Run()
		_ = lf.Close()
		if err != nil {
			tail, _ := os.ReadFile(logPath)
			if len(tail) > 4000 {
				tail = tail[len(tail)-4000:]
			}
			return fmt.Errorf("mvn package in bench/kstreams: %w\n%s", err, tail)
		}
	}
	cp, err := os.ReadFile(cpFile)
	if err != nil {
		return err
	}
	bins["kstreams-cp"] = jar + string(os.PathListSeparator) + strings.TrimSpace(string(cp))
	return nil
}

// stale reports whether any of the outputs is missing or older than any file
// under the inputs.
func stale(jar, cpFile string, inputs ...string) bool {
	oldest := time.Time{}
	for _, o := range []string{jar, cpFile} {
		st, err := os.Stat(o)
		if err != nil {
			return true
		}
		if oldest.IsZero() || st.ModTime().Before(oldest) {
			oldest = st.ModTime()
		}
	}
	newer := false
	for _, in := range inputs {
		_ = filepath.Walk(in, func(_ string, info os.FileInfo, err error) error {
			if err == nil && info.ModTime().After(oldest) {
				newer = true
			}
			return nil
		})
	}
	return newer
}

// runEngine runs one engine alone and measures it.
func runEngine(ctx context.Context, cfg *config, br *broker, d *dataset, bins map[string]string, engine, input, prefix string) *measurement {
	m := &measurement{engine: engine, brokerCPU: -1}
	appID := prefix + engine
	output := appID + "-topic2"
	m.logFile = filepath.Join(cfg.resultsDir, cfg.logPrefix+engine+".log")
	logf("%s: running (application id %s)", engine, appID)

	var cmd *exec.Cmd
	var col *collector
	gokaResults := filepath.Join(cfg.resultsDir, engine+"-results.jsonl")
	profile := filepath.Join(cfg.resultsDir, cfg.profile)
	switch engine {
	case "ours":
		args := []string{"-brokers", strings.Join(br.brokers, ","), "-app-id", appID, "-input", input,
			"-output", output, "-dlq", appID + "-dlq", "-guarantee", cfg.guarantee,
			"-commit", fmt.Sprintf("%dms", cfg.commitMs)}
		if cfg.cpuprofile {
			args = append(args, "-cpuprofile", profile)
		}
		if cfg.memprofile {
			args = append(args, "-memprofile", strings.TrimSuffix(profile, ".pprof")+".heap")
		}
		if cfg.oursStore != "memory" {
			args = append(args, "-store", cfg.oursStore, "-state-dir", filepath.Join(cfg.stateRoot, appID))
		}
		cmd = exec.Command(bins["ours"], args...)
	case "kstreams":
		args := append([]string{}, cfg.javaOpts...)
		args = append(args, "-cp", bins["kstreams-cp"], "emostream.bench.KStreamsBench",
			"--brokers", strings.Join(br.brokers, ","), "--app-id", appID, "--input", input, "--output", output,
			"--guarantee", cfg.guarantee, "--commit-ms", strconv.Itoa(cfg.commitMs),
			"--threads", strconv.Itoa(cfg.ksThreads), "--store", cfg.ksStore, "--emit", cfg.ksEmit)
		if cfg.ksCache != "" {
			args = append(args, "--cache-bytes", cfg.ksCache)
		}
		cmd = exec.Command("java", args...)
	case "goka", "goka-loopback":
		mode := "direct"
		if engine == "goka-loopback" {
			mode = "loopback"
		}
		cmd = exec.Command(bins["goka"], "-brokers", strings.Join(br.brokers, ","), "-group", appID,
			"-input", input, "-mode", mode, "-expect", strconv.Itoa(d.n+d.partitions), "-results", gokaResults)
	}
	if err := br.checkInput(d, input); err != nil {
		m.err = err.Error()
		return m
	}
	hasOutput := engine == "ours" || engine == "kstreams"
	drained := false
	if hasOutput {
		if err := br.createTopic(output, int32(cfg.partitions), keepForever); err != nil {
			m.err = err.Error()
			return m
		}
		var err error
		if col, err = newCollector(br.brokers, output, int32(cfg.partitions), d.expected, d.keys > len(d.emojis)); err != nil {
			m.err = err.Error()
			return m
		}
		defer func() {
			if !drained {
				col.close()
			}
		}()
	}
	logFile, err := os.Create(m.logFile)
	if err != nil {
		m.err = err.Error()
		return m
	}
	defer logFile.Close()
	cmd.Stderr = logFile
	cmd.Stdout = logFile
	// Its own process group: a Ctrl-C on the terminal reaches the harness,
	// which stops the engine itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	gokaDone := make(chan struct{})
	var stdout *io.PipeWriter
	if !hasOutput {
		// goka says DONE on stdout; exec copies it into the pipe and Wait
		// waits for that copy.
		var pr *io.PipeReader
		pr, stdout = io.Pipe()
		cmd.Stdout = stdout
		go func() {
			sc := bufio.NewScanner(pr)
			closed := false
			for sc.Scan() {
				line := sc.Text()
				fmt.Fprintln(logFile, line)
				if strings.HasPrefix(line, "DONE") && !closed {
					closed = true
					close(gokaDone)
				}
			}
		}()
	}

	brokerPID := br.pid()
	var broker0 float64
	if brokerPID > 0 {
		broker0, _ = harness.CPUSeconds(brokerPID)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		m.err = err.Error()
		return m
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		if stdout != nil {
			_ = stdout.Close()
		}
		close(exited)
	}()

	var complete <-chan struct{} = gokaDone
	if col != nil {
		complete = col.complete
	}
	// The collector knows the last result's arrival time only once it has
	// checked the results, a few seconds later at a million results: the
	// engine's CPU and peak RSS are sampled as it runs and read at that
	// arrival time.
	usage := startUsage(pid, brokerPID, 100*time.Millisecond)
	defer usage.stop()
	timer := time.NewTimer(cfg.timeout)
	defer timer.Stop()
	var doneAt time.Time
	select {
	case <-complete:
		doneAt = time.Now()
		if col != nil {
			col.mu.Lock()
			doneAt = col.doneAt
			col.mu.Unlock()
		}
		u := usage.at(doneAt)
		m.cpu, m.rss = u.cpu, u.rss
		if brokerPID > 0 && u.broker >= 0 {
			m.brokerCPU = u.broker - broker0
		}
	case <-exited:
		m.err = fmt.Sprintf("exited before the last result: %v", waitErr)
	case <-timer.C:
		m.err = fmt.Sprintf("no complete result set within TIMEOUT=%v", cfg.timeout)
	case <-ctx.Done():
		m.err = "interrupted"
	}

	// Stop the engine: SIGTERM, SIGKILL after 60 s.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		logf("%s: did not stop within 60s of SIGTERM, killing it", engine)
		_ = cmd.Process.Kill()
		<-exited
	}
	if st := cmd.ProcessState; st != nil {
		if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
			m.cpuTotal = tv(ru.Utime) + tv(ru.Stime)
			m.rssTotal = float64(ru.Maxrss) / 1024
		}
		if m.ok() && !st.Success() && engine != "kstreams" {
			logf("%s: exit status after SIGTERM: %v", engine, st)
		}
	}
	if m.ok() {
		m.wall = doneAt.Sub(start).Seconds()
		m.rps = float64(d.n) / m.wall
	}

	if col != nil {
		col.drain(1500 * time.Millisecond)
		drained = true
		col.mu.Lock()
		m.results, m.raw = col.results, col.raw
		m.outRecords, m.dups, m.conflicts, m.extra, m.bad = col.records, col.dups, col.conflicts, col.extra, col.bad+col.badKeys
		if !col.first.IsZero() {
			m.first = col.first.Sub(start).Seconds()
		}
		col.mu.Unlock()
	} else if m.ok() {
		res, err := readResultFile(gokaResults)
		if err != nil {
			m.err = err.Error()
		}
		// goka does not close windows in loopback mode: drop the sentinels'
		// windows, which the other engines never emit.
		for k := range res {
			if slices.Contains(d.sentinels, k.emoji) {
				delete(res, k)
			}
		}
		m.results = res
		m.outRecords = len(res)
		for k := range res {
			if _, ok := d.expected[k]; !ok {
				m.extra++
			}
		}
	}
	m.matches = m.ok() && sameResults(m.results, expectedResults(d)) && m.conflicts == 0 && m.bad == 0
	if w, err := br.written(appID + "-"); err == nil {
		m.kafkaWrites = w
	}
	if engine == "ours" && cfg.cpuprofile && m.ok() {
		// Two listings: by cumulative time (where the time goes) and flat.
		var buf strings.Builder
		for _, mode := range []string{"-cum", "-flat"} {
			out, err := exec.Command(envOr("GO", "go"), "tool", "pprof", "-top", mode, "-nodecount=45", bins["ours"], profile).Output()
			if err != nil {
				logf("go tool pprof: %v", err)
				break
			}
			fmt.Fprintf(&buf, "==== go tool pprof -top %s bench-ours %s\n%s\n", mode, cfg.profile, out)
		}
		_ = os.WriteFile(filepath.Join(cfg.resultsDir, strings.TrimSuffix(cfg.profile, ".pprof")+"-top.txt"), []byte(buf.String()), 0o644)
	}
	return m
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func expectedResults(d *dataset) map[rkey]wire.Result {
	out := make(map[rkey]wire.Result, len(d.expected))
	for k, n := range d.expected {
		out[k] = wire.NewResult(k.start, time.Duration(windowMs)*time.Millisecond, k.emoji, n, scale)
	}
	return out
}

func sameResults(a, b map[rkey]wire.Result) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// ------------------------------------------------------------------ report --

type engineJSON struct {
	OK              bool      `json:"ok"`
	Error           string    `json:"error,omitempty"`
	WallSeconds     float64   `json:"wall_seconds"`
	FirstResultSecs *float64  `json:"first_result_seconds,omitempty"`
	RPSAfterFirst   *float64  `json:"records_per_second_after_first_result,omitempty"`
	RPS             float64   `json:"records_per_second"`
	CPUSeconds      float64   `json:"cpu_seconds"`
	CPUTotalSeconds float64   `json:"cpu_seconds_with_shutdown"`
	CPUMicrosPerRec float64   `json:"cpu_us_per_record"`
	PeakRSSMB       float64   `json:"peak_rss_mb"`
	BrokerCPU       *float64  `json:"broker_cpu_seconds,omitempty"`
	KafkaWrites     int64     `json:"kafka_records_written"`
	OutputRecords   int       `json:"output_records"`
	Results         int       `json:"distinct_results"`
	Duplicates      int       `json:"duplicate_results"`
	Conflicts       int       `json:"conflicting_results"`
	Unexpected      int       `json:"unexpected_results"`
	MatchesExpected bool      `json:"matches_expected"`
	AllRunsRPS      []float64 `json:"all_runs_rps,omitempty"`
}

type summary struct {
	Records          int      `json:"records"`
	OursRPS          *float64 `json:"ours_rps"`
	KStreamsRPS      *float64 `json:"kstreams_rps"`
	GokaRPS          *float64 `json:"goka_rps"`
	ThroughputRatio  *float64 `json:"throughput_ratio"`
	OursRSSMB        *float64 `json:"ours_rss_mb"`
	KStreamsRSSMB    *float64 `json:"kstreams_rss_mb"`
	IdenticalResults bool     `json:"identical_results"`

	Date             string                `json:"date"`
	Quick            bool                  `json:"quick"`
	Partitions       int                   `json:"partitions"`
	Windows          int                   `json:"windows"`
	ExpectedResults  int                   `json:"expected_results"`
	Guarantee        string                `json:"guarantee"`
	CommitIntervalMs int                   `json:"commit_interval_ms"`
	Runs             int                   `json:"runs"`
	CPURatio         *float64              `json:"cpu_ratio"`
	ByteIdentical    *bool                 `json:"output_bytes_identical"`
	Engines          map[string]engineJSON `json:"engines"`
	Settings         map[string]string     `json:"settings"`
	SetupSeconds     map[string]float64    `json:"setup_seconds"`
}

// median picks the run with the median records/s (failed runs last).
func median(ms []*measurement) *measurement {
	s := slices.Clone(ms)
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].ok() != s[j].ok() {
			return s[i].ok()
		}
		return s[i].rps < s[j].rps
	})
	ok := 0
	for _, m := range s {
		if m.ok() {
			ok++
		}
	}
	if ok == 0 {
		return s[0]
	}
	return s[(ok-1)/2]
}

func report(cfg *config, d *dataset, all map[string][]*measurement, setup map[string]float64, bins map[string]string) error {
	picked := map[string]*measurement{}
	for e, ms := range all {
		picked[e] = median(ms)
	}
	expected := expectedResults(d)

	// Identical: every engine that ran produced the same result set, in
	// every run.
	identical := len(all) > 0
	var ref map[rkey]wire.Result
	for _, e := range cfg.engines {
		for _, m := range all[e] {
			if !m.ok() || m.conflicts > 0 || m.bad > 0 {
				identical = false
				continue
			}
			if ref == nil {
				ref = m.results
			} else if !sameResults(ref, m.results) {
				identical = false
			}
		}
	}
	var byteIdentical *bool
	byteDiff := ""
	if o, k := picked["ours"], picked["kstreams"]; o != nil && k != nil && o.ok() && k.ok() {
		same := len(o.raw) == len(k.raw)
		differ := 0
		for key, v := range o.raw {
			if k.raw[key] != v {
				same = false
				if differ == 0 {
					byteDiff = fmt.Sprintf("e.g. ours %s vs Kafka Streams %s", v, k.raw[key])
				}
				differ++
			}
		}
		if differ > 0 {
			byteDiff = fmt.Sprintf("%d of %d values differ, %s", differ, len(o.raw), byteDiff)
		}
		byteIdentical = &same
	}

	s := summary{
		Records: d.n, IdenticalResults: identical,
		Date: time.Now().UTC().Format(time.RFC3339), Quick: cfg.quick, Partitions: cfg.partitions,
		Windows: d.windows(), ExpectedResults: len(expected), Guarantee: cfg.guarantee,
		CommitIntervalMs: cfg.commitMs, Runs: cfg.runs, ByteIdentical: byteIdentical,
		Engines: map[string]engineJSON{}, SetupSeconds: setup,
		Settings: map[string]string{
			"cores":             strconv.Itoa(runtime.NumCPU()),
			"go":                runtime.Version(),
			"java":              javaVersion(),
			"kstreams_threads":  strconv.Itoa(cfg.ksThreads),
			"kstreams_store":    cfg.ksStore,
			"kstreams_emit":     cfg.ksEmit,
			"kstreams_cache":    orDefault(cfg.ksCache, "default (10 MiB)"),
			"kstreams_java_opt": orDefault(strings.Join(cfg.javaOpts, " "), "none (JVM defaults)"),
			"event_rate":        strconv.Itoa(cfg.rate) + " records per second of event time",
			"jitter_ms":         strconv.FormatInt(cfg.jitter, 10),
			"emojis":            strconv.Itoa(len(d.emojis)),
			"ours_topology":     "aggregator.Topology with Config.StreamTimeOnly (wall-clock close off)",
		},
	}
	rps := func(e string) *float64 {
		if m := picked[e]; m != nil && m.ok() {
			return ptr(m.rps)
		}
		return nil
	}
	rss := func(e string) *float64 {
		if m := picked[e]; m != nil && m.ok() {
			return ptr(round(m.rss, 1))
		}
		return nil
	}
	s.OursRPS, s.KStreamsRPS, s.GokaRPS = rps("ours"), rps("kstreams"), rps("goka")
	s.OursRSSMB, s.KStreamsRSSMB = rss("ours"), rss("kstreams")
	if s.OursRPS != nil && s.KStreamsRPS != nil {
		s.ThroughputRatio = ptr(round(*s.OursRPS / *s.KStreamsRPS, 3))
		s.CPURatio = ptr(round(picked["ours"].cpu/picked["kstreams"].cpu, 3))
	}
	for _, p := range []**float64{&s.OursRPS, &s.KStreamsRPS, &s.GokaRPS} {
		if *p != nil {
			*p = ptr(math.Round(**p))
		}
	}
	for _, e := range cfg.engines {
		m := picked[e]
		j := engineJSON{OK: m.ok(), Error: m.err, WallSeconds: round(m.wall, 3), RPS: math.Round(m.rps),
			CPUSeconds: round(m.cpu, 2), CPUTotalSeconds: round(m.cpuTotal, 2), PeakRSSMB: round(m.rss, 1),
			KafkaWrites: m.kafkaWrites, OutputRecords: m.outRecords, Results: len(m.results),
			Duplicates: m.dups, Conflicts: m.conflicts, Unexpected: m.extra, MatchesExpected: m.matches}
		if m.ok() {
			j.CPUMicrosPerRec = round(m.cpu/float64(d.n)*1e6, 2)
		}
		if m.first > 0 && m.ok() {
			j.FirstResultSecs = ptr(round(m.first, 3))
			j.RPSAfterFirst = ptr(math.Round(float64(d.n) / (m.wall - m.first)))
		}
		if m.brokerCPU >= 0 {
			j.BrokerCPU = ptr(round(m.brokerCPU, 2))
		}
		if cfg.runs > 1 {
			for _, r := range all[e] {
				j.AllRunsRPS = append(j.AllRunsRPS, math.Round(r.rps))
			}
		}
		s.Engines[e] = j
	}

	// The table.
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nEmoStream windowed count, %d records (+%d sentinels), %d partitions, %d emojis, %d windows, %d results; %s, commit %d ms; %d core(s)%s\n\n",
		d.n, d.partitions, cfg.partitions, len(d.emojis), d.windows(), len(expected), cfg.guarantee, cfg.commitMs, runtime.NumCPU(),
		map[bool]string{true: fmt.Sprintf("; median of %d runs", cfg.runs), false: ""}[cfg.runs > 1])
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "engine\twall s\trecords/s\tfirst result s\trecords/s after first\tCPU s\tCPU µs/rec\tCPU s incl. stop\tpeak RSS MiB\tbroker CPU s\tKafka writes\tresults\tdups\tmatches\t")
	for _, e := range cfg.engines {
		m := picked[e]
		if !m.ok() {
			fmt.Fprintf(tw, "%s\tFAILED\t\t\t\t\t\t\t\t\t\t\t\t\t\n", labels[e])
			continue
		}
		first, after := "-", "-"
		if m.first > 0 {
			first = fmt.Sprintf("%.2f", m.first)
			after = fmt.Sprintf("%.0f", float64(d.n)/(m.wall-m.first))
		}
		bcpu := "-"
		if m.brokerCPU >= 0 {
			bcpu = fmt.Sprintf("%.1f", m.brokerCPU)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.0f\t%s\t%s\t%.2f\t%.1f\t%.2f\t%.0f\t%s\t%d\t%d\t%d\t%s\t\n",
			labels[e], m.wall, m.rps, first, after, m.cpu, m.cpu/float64(d.n)*1e6, m.cpuTotal, m.rss, bcpu,
			m.kafkaWrites, len(m.results), m.dups, yesNo(m.matches))
	}
	_ = tw.Flush()
	for _, e := range cfg.engines {
		if m := picked[e]; !m.ok() {
			fmt.Fprintf(&sb, "%s FAILED: %s (log: %s)\n", labels[e], m.err, m.logFile)
		}
	}
	if o, k := picked["ours"], picked["kstreams"]; o != nil && k != nil && o.ok() && k.ok() {
		fmt.Fprintf(&sb, "\nours / Kafka Streams: throughput %.2fx, CPU %.2fx, peak RSS %.2fx, wall %.2fx\n",
			o.rps/k.rps, o.cpu/k.cpu, o.rss/k.rss, o.wall/k.wall)
	}
	if g := picked["goka"]; g != nil && g.ok() {
		if o := picked["ours"]; o != nil && o.ok() {
			fmt.Fprintf(&sb, "ours / goka floor:    throughput %.2fx, CPU %.2fx\n", o.rps/g.rps, o.cpu/g.cpu)
		}
	}
	fmt.Fprintf(&sb, "identical results across engines: %s", yesNo(identical))
	if byteIdentical != nil {
		fmt.Fprintf(&sb, "; ours and Kafka Streams output values byte-identical: %s", yesNo(*byteIdentical))
		if byteDiff != "" {
			fmt.Fprintf(&sb, " (%s)", byteDiff)
		}
	}
	sb.WriteString("\n")
	setupTotal := 0.0
	keys := make([]string, 0, len(setup))
	for k := range setup {
		keys = append(keys, k)
		setupTotal += setup[k]
	}
	sort.Strings(keys)
	fmt.Fprintf(&sb, "setup:")
	for _, k := range keys {
		fmt.Fprintf(&sb, " %s %.1fs", k, setup[k])
	}
	fmt.Fprintf(&sb, "; whole run %.0fs\n", time.Since(cfg.startedWall).Seconds())
	if top, err := os.ReadFile(filepath.Join(cfg.resultsDir, "ours-cpu-top.txt")); err == nil && cfg.cpuprofile && picked["ours"] != nil && picked["ours"].ok() {
		fmt.Fprintf(&sb, "\nCPU profile of ours by cumulative time (bench/results/ours-cpu.pprof; more in bench/results/ours-cpu-top.txt):\n")
		n := 0
		for _, l := range strings.Split(string(top), "\n") {
			if strings.HasPrefix(l, "====") || strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") ||
				strings.HasPrefix(l, "Type:") || strings.HasPrefix(l, "Time:") || strings.HasPrefix(l, "Showing") ||
				strings.HasPrefix(l, "Dropped") {
				continue
			}
			if l == "" {
				break
			}
			if len(l) > 150 {
				l = l[:150] + "…"
			}
			sb.WriteString("  " + l + "\n")
			if n++; n >= 28 {
				break
			}
		}
	}
	fmt.Print(sb.String())
	_ = os.WriteFile(filepath.Join(cfg.resultsDir, "latest.txt"), []byte(sb.String()), 0o644)

	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(cfg.resultsDir, "latest.json")
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s\n", path)
	for _, e := range cfg.engines {
		if !picked[e].ok() {
			return fmt.Errorf("engine %s failed: %s", e, picked[e].err)
		}
	}
	return nil
}

func javaVersion() string {
	out, err := exec.Command("java", "-version").CombinedOutput()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// ------------------------------------------------------------------ helpers --

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		raw, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(raw), "module github.com/emostream/emostream\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the github.com/emostream/emostream module")
		}
		dir = parent
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "compare %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envBool(k string) bool {
	switch strings.ToLower(os.Getenv(k)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func ptr[T any](v T) *T { return &v }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// usageSample is one reading of the engine's CPU seconds and peak RSS (MiB)
// and the broker's CPU seconds (-1 when unknown).
type usageSample struct {
	t                time.Time
	cpu, rss, broker float64
}

// usageSampler reads an engine's and the broker's /proc figures at a fixed
// period, so that they can be read afterwards at a moment in the past.
type usageSampler struct {
	pid, brokerPID int
	sampler        *harness.Sampler
	mu             sync.Mutex
	samples        []usageSample
}

func startUsage(pid, brokerPID int, every time.Duration) *usageSampler {
	u := &usageSampler{pid: pid, brokerPID: brokerPID}
	u.sampler = harness.StartSampler(every, u.sample)
	return u
}

func (u *usageSampler) read() usageSample {
	s := usageSample{t: time.Now(), broker: -1}
	s.cpu, _ = harness.CPUSeconds(u.pid)
	s.rss, _ = harness.PeakRSSMB(u.pid)
	if u.brokerPID > 0 {
		if b, err := harness.CPUSeconds(u.brokerPID); err == nil {
			s.broker = b
		}
	}
	return s
}

func (u *usageSampler) sample() {
	s := u.read()
	u.mu.Lock()
	u.samples = append(u.samples, s)
	u.mu.Unlock()
}

// stop ends the sampling; it may be called more than once.
func (u *usageSampler) stop() { u.sampler.Stop() }

// at returns the figures at t: CPU seconds interpolated between the two
// samples around t, the peak RSS of the first sample at or after t (a peak
// only grows); a fresh reading when t is after the last sample.
func (u *usageSampler) at(t time.Time) usageSample {
	u.mu.Lock()
	defer u.mu.Unlock()
	i := sort.Search(len(u.samples), func(i int) bool { return !u.samples[i].t.Before(t) })
	if i == len(u.samples) {
		return u.read()
	}
	after := u.samples[i]
	if i == 0 {
		return after
	}
	before := u.samples[i-1]
	f := float64(t.Sub(before.t)) / float64(after.t.Sub(before.t))
	lerp := func(a, b float64) float64 {
		if a < 0 || b < 0 {
			return b
		}
		return a + f*(b-a)
	}
	return usageSample{t: t, cpu: lerp(before.cpu, after.cpu), rss: after.rss, broker: lerp(before.broker, after.broker)}
}
