package main

// The scale sweep (issue #14, `make bench-scale`, `go run ./bench/compare
// scale`): the windowed count of bench-compare, ours and Kafka Streams on
// the same broker, over distinct keys per window (16, 10,000, 1,000,000) and
// both store kinds (memory; disk: our pebble store, stream.Persistent(), vs
// Kafka Streams' RocksDB), then a restore run: how long each engine takes to
// rebuild a store of 1,000,000 keys from its changelog once its local state
// is gone. Writes bench/results/scale.json (and scale.txt, the printed
// report) and checks the targets. See bench/README.md.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"
)

// scaleKafkaPort is the client port of the sweep's own broker (its
// controller listens on the next port), in a range nothing else here uses.
const scaleKafkaPort = 30692

// scaleRow is one (keys, store) point of scale.json.
type scaleRow struct {
	Keys             int     `json:"keys"`
	Store            string  `json:"store"`
	OursRPS          float64 `json:"ours_rps"`
	KStreamsRPS      float64 `json:"kstreams_rps"`
	Ratio            float64 `json:"ratio"`
	IdenticalResults bool    `json:"identical_results"`
	OursRSSMB        float64 `json:"ours_rss_mb"`
	KStreamsRSSMB    float64 `json:"kstreams_rss_mb"`
	OursCPUPerRec    float64 `json:"ours_cpu_us_per_record"`
	KStreamsCPUPerRe float64 `json:"kstreams_cpu_us_per_record"`
}

// scaleRestore is scale.json's restore run.
type scaleRestore struct {
	Keys      int     `json:"keys"`
	OursS     float64 `json:"ours_s"`
	KStreamsS float64 `json:"kstreams_s"`
	Ratio     float64 `json:"ratio"`
}

type scaleJSON struct {
	Quick   bool          `json:"quick"`
	Rows    []scaleRow    `json:"rows"`
	Restore *scaleRestore `json:"restore"`
	// ConsumerFloor is beyond the schema: what reading the 16-key
	// point's input alone costs (bench/floor), the part of ours' CPU per
	// record spent by the Kafka client.
	ConsumerFloor *scaleFloor `json:"consumer_floor,omitempty"`
}

// scaleFloor is scale.json's consumer_floor: bench/floor's CPU per record
// on the input of the sweep's smallest key count, per Kafka client.
type scaleFloor struct {
	Keys    int `json:"keys"`
	Records int `json:"records"`
	// SaramaCPU is the consumer group pkg/stream runs (sarama, with the
	// App's consumer settings); KgoCPU franz-go's, for comparison.
	SaramaCPU float64 `json:"sarama_cpu_us_per_record"`
	KgoCPU    float64 `json:"kgo_cpu_us_per_record"`
	// SaramaDecodeCPU is sarama's reading plus decoding each value as an
	// event (wire.DecodeEvent), as ours does before it processes a record.
	SaramaDecodeCPU float64 `json:"sarama_decode_cpu_us_per_record"`
}

// restoreResult is one engine's restore run.
type restoreResult struct {
	err      string
	seconds  float64 // first store partition's restore start -> last one's end
	ready    float64 // process start -> tasks running
	records  int64   // changelog records restored
	fill     float64 // s, the run that built the state
	logFile  string
	restored int // store partitions restored
}

type scaleSettings struct {
	keys        []int
	stores      []string
	records     int // per point at least this many (and at least keys)
	restoreKeys int
}

func scaleConfig(cfg *config) (*scaleSettings, error) {
	s := &scaleSettings{keys: []int{16, 10_000, 1_000_000}, stores: []string{"memory", "disk"}, restoreKeys: 1_000_000}
	s.records = 5_000_000
	if cfg.quick {
		s.records = 200_000
	}
	var errs []error
	if v := os.Getenv("RECORDS"); v != "" {
		s.records = cfg.records
	}
	if v := os.Getenv("SCALE_KEYS"); v == "none" {
		s.keys = nil // the restore run only
	} else if v != "" {
		s.keys = nil
		for _, f := range splitList(v) {
			n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("SCALE_KEYS: %q is not a positive integer", f))
				continue
			}
			s.keys = append(s.keys, n)
		}
	}
	if v := os.Getenv("SCALE_STORES"); v != "" {
		s.stores = splitList(v)
		for _, st := range s.stores {
			if st != "memory" && st != "disk" {
				errs = append(errs, fmt.Errorf("SCALE_STORES: %q is neither memory nor disk", st))
			}
		}
	}
	if v := os.Getenv("RESTORE_KEYS"); v != "" {
		n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("RESTORE_KEYS: %q is not a non-negative integer", v))
		}
		s.restoreKeys = n
	}
	return s, errors.Join(errs...)
}

func runScale(ctx context.Context, cfg *config) error {
	sc, err := scaleConfig(cfg)
	if err != nil {
		return err
	}
	if os.Getenv("TIMEOUT") == "" {
		// Kafka Streams needs minutes for a 1,000,000-key point on 2
		// shared cores; the comparison's QUICK default (5 min) is too short.
		cfg.timeout = 30 * time.Minute
	}
	if os.Getenv("ENGINES") == "" {
		cfg.engines = []string{"ours", "kstreams"}
	}
	for _, e := range cfg.engines {
		if e != "ours" && e != "kstreams" {
			return fmt.Errorf("ENGINES: bench-scale runs ours and kstreams only, not %q", e)
		}
	}
	port := scaleKafkaPort
	if v := os.Getenv("SCALE_KAFKA_PORT"); v != "" {
		if port, err = strconv.Atoi(v); err != nil || port < 1 || port > 65534 {
			return fmt.Errorf("SCALE_KAFKA_PORT=%q: not a port", v)
		}
	}
	if err := os.MkdirAll(cfg.resultsDir, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "emostream-bench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cfg.stateRoot = filepath.Join(work, "state")
	began := time.Now()

	logf("kafka...")
	br, err := startScaleBroker(cfg.root, port)
	if err != nil {
		return err
	}
	defer br.stop()
	logf("kafka: %s", strings.Join(br.brokers, ","))
	bins := map[string]string{}
	logf("build...")
	if err := buildAll(cfg, work, bins); err != nil {
		return err
	}
	if err := br.warmUp(cfg.guarantee == "exactly_once_v2"); err != nil {
		return err
	}
	id := fmt.Sprintf("emostream-scale-%s-", strconv.FormatInt(time.Now().Unix(), 36))
	defer br.deleteTopics(id)

	// One unmeasured round of both engines warms the fresh broker's JIT.
	if cfg.warmup > 0 {
		dw, err := newKeyedDataset(min(cfg.warmup, 100_000), cfg.partitions, 16, cfg.jitter, false)
		if err != nil {
			return err
		}
		in := id + "warmup-topic1"
		if err := br.createTopic(in, int32(cfg.partitions), keepForever); err != nil {
			return err
		}
		if err := br.preload(dw, in); err != nil {
			return err
		}
		for _, e := range cfg.engines {
			c := *cfg
			c.cpuprofile = false
			c.logPrefix = "scale-warmup-"
			m := runEngine(ctx, &c, br, dw, bins, e, in, id+"warmup-")
			if !m.ok() {
				return fmt.Errorf("warm-up run of %s failed: %s (log: %s)", e, m.err, m.logFile)
			}
			logf("warm-up %s: %.2fs (not counted)", e, m.wall)
		}
		br.deleteTopics(id + "warmup-")
	}

	var rows []scaleRow
	var details []string
	failed := false
	var floor *scaleFloor
	floorOn := os.Getenv("FLOOR") != "0"
	for pi, keys := range sc.keys {
		n := max(sc.records, keys)
		d, err := newKeyedDataset(n, cfg.partitions, keys, cfg.jitter, false)
		if err != nil {
			return err
		}
		in := fmt.Sprintf("%sk%d-topic1", id, keys)
		logf("keys %d: %d records (%d per window, %d windows), %d expected results; preloading", keys, n, d.perWindow(), d.windows(), len(d.expected))
		if err := br.createTopic(in, int32(cfg.partitions), keepForever); err != nil {
			return err
		}
		if err := br.preload(d, in); err != nil {
			return err
		}
		for si, store := range sc.stores {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c := *cfg
			c.oursStore = store
			c.ksStore = map[string]string{"memory": "memory", "disk": "rocksdb"}[store]
			c.profile = fmt.Sprintf("scale-ours-%d-%s.pprof", keys, store)
			c.logPrefix = fmt.Sprintf("scale-%d-%s-", keys, store)
			order := slices.Clone(cfg.engines)
			if (pi+si)%2 == 1 {
				slices.Reverse(order) // neither engine always runs first
			}
			ms := map[string]*measurement{}
			for _, e := range order {
				prefix := fmt.Sprintf("%sk%d-%s-", id, keys, store)
				m := runEngine(ctx, &c, br, d, bins, e, in, prefix)
				if m.ok() {
					logf("keys %d %s %s: %.2fs = %.0f records/s, CPU %.2fs, peak RSS %.0f MiB, matches %s",
						keys, store, e, m.wall, m.rps, m.cpu, m.rss, yesNo(m.matches))
				} else {
					logf("keys %d %s %s: FAILED: %s (log: %s)", keys, store, e, m.err, m.logFile)
				}
				ms[e] = m
			}
			o, k := ms["ours"], ms["kstreams"]
			if o == nil {
				o = &measurement{engine: "ours", err: "not run (ENGINES)"}
			}
			if k == nil {
				k = &measurement{engine: "kstreams", err: "not run (ENGINES)"}
			}
			row := scaleRow{Keys: keys, Store: store}
			row.IdenticalResults = o.ok() && k.ok() && o.matches && k.matches && sameResults(o.results, k.results)
			if o.ok() {
				row.OursRPS, row.OursRSSMB = math.Round(o.rps), round(o.rss, 1)
				row.OursCPUPerRec = round(o.cpu/float64(n)*1e6, 3)
			}
			if k.ok() {
				row.KStreamsRPS, row.KStreamsRSSMB = math.Round(k.rps), round(k.rss, 1)
				row.KStreamsCPUPerRe = round(k.cpu/float64(n)*1e6, 3)
			}
			if o.ok() && k.ok() {
				row.Ratio = round(o.rps/k.rps, 3)
			}
			if !row.IdenticalResults {
				failed = true
			}
			rows = append(rows, row)
			details = append(details, fmt.Sprintf("keys %d %s: %d records, %d results; ours wall %.2fs (first result %.2fs), CPU %.2fs, Kafka writes %d, dups %d%s; Kafka Streams wall %.2fs (first result %.2fs), CPU %.2fs, Kafka writes %d, dups %d%s",
				keys, store, n, len(d.expected), o.wall, o.first, o.cpu, o.kafkaWrites, o.dups, errNote(o), k.wall, k.first, k.cpu, k.kafkaWrites, k.dups, errNote(k)))
			br.deleteTopics(fmt.Sprintf("%sk%d-%s-", id, keys, store))
			_ = os.RemoveAll(cfg.stateRoot)
		}
		if pi == 0 && floorOn && slices.Contains(cfg.engines, "ours") && ctx.Err() == nil {
			floor = &scaleFloor{Keys: keys, Records: n}
			for _, f := range []struct {
				client string
				decode bool
				to     *float64
			}{{"sarama", false, &floor.SaramaCPU}, {"kgo", false, &floor.KgoCPU}, {"sarama", true, &floor.SaramaDecodeCPU}} {
				fr, err := runFloor(ctx, br, bins["floor"], in, n+d.sentinelCount(), f.client, f.decode)
				if err != nil {
					logf("floor %s (decode %v): FAILED: %v", f.client, f.decode, err)
					continue
				}
				*f.to = round(fr.CPUS/float64(n)*1e6, 3)
				logf("floor %s (decode %v), keys %d: %d records in %.2fs, CPU %.2fs = %.2f µs/record", f.client, f.decode, keys, fr.Records, fr.WallS, fr.CPUS, *f.to)
			}
		}
		br.deleteTopics(in)
	}

	var restore *scaleRestore
	rr := map[string]*restoreResult{}
	if sc.restoreKeys > 0 && ctx.Err() == nil {
		d, err := newKeyedDataset(sc.restoreKeys, cfg.partitions, sc.restoreKeys, cfg.jitter, true)
		if err != nil {
			return err
		}
		in := id + "restore-topic1"
		logf("restore: %d records over %d keys, windows left open; preloading", d.n, sc.restoreKeys)
		if err := br.createTopic(in, int32(cfg.partitions), keepForever); err != nil {
			return err
		}
		if err := br.preload(d, in); err != nil {
			return err
		}
		for _, e := range cfg.engines {
			r := runRestore(ctx, cfg, br, d, bins, e, in, id+"restore-")
			rr[e] = r
			if r.err != "" {
				logf("restore %s: FAILED: %s (log: %s)", e, r.err, r.logFile)
				failed = true
			} else {
				logf("restore %s: %d changelog records of %d store partitions in %.2fs (ready %.2fs after start; filling took %.1fs)",
					e, r.records, r.restored, r.seconds, r.ready, r.fill)
			}
		}
		restore = &scaleRestore{Keys: sc.restoreKeys}
		if o := rr["ours"]; o != nil && o.err == "" {
			restore.OursS = round(o.seconds, 3)
		}
		if k := rr["kstreams"]; k != nil && k.err == "" {
			restore.KStreamsS = round(k.seconds, 3)
		}
		if restore.OursS > 0 && restore.KStreamsS > 0 {
			restore.Ratio = round(restore.KStreamsS/restore.OursS, 3)
		}
	}
	return scaleReport(cfg, sc, rows, details, restore, rr, floor, failed, time.Since(began))
}

// floorResult is bench/floor's output line.
type floorResult struct {
	Records int64   `json:"records"`
	WallS   float64 `json:"wall_s"`
	CPUS    float64 `json:"cpu_s"`
}

// runFloor runs bench/floor on topic: the given Kafka client reads its n
// records and does nothing else (decode: decodes each value as an event).
func runFloor(ctx context.Context, br *broker, bin, topic string, n int, client string, decode bool) (*floorResult, error) {
	args := []string{"-brokers", strings.Join(br.brokers, ","), "-topic", topic, "-records", strconv.Itoa(n), "-client", client}
	if decode {
		args = append(args, "-decode")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var fr floorResult
	if err := json.Unmarshal(out, &fr); err != nil {
		return nil, fmt.Errorf("bench/floor printed %q: %v", out, err)
	}
	return &fr, nil
}

// startScaleBroker starts the sweep's own broker (scripts/kafka-local.sh
// with KAFKA_PORT=port, the controller on port+1, its state under the
// temporary directory), so the sweep neither disturbs nor is disturbed by
// the shared one on 29092; KAFKA_BROKERS uses that broker instead. The
// ports lie in the kernel's ephemeral range, so an outgoing connection may
// hold one: then it tries port+100, +200, ... (up to 5 times).
func startScaleBroker(root string, port int) (*broker, error) {
	if os.Getenv("KAFKA_BROKERS") != "" {
		return startBroker(root)
	}
	var errs []error
	for try := 0; try < 5; try++ {
		p := port + 100*try
		if !portsFree(p, p+1) {
			errs = append(errs, fmt.Errorf("127.0.0.1:%d or :%d in use", p, p+1))
			continue
		}
		os.Setenv("KAFKA_PORT", strconv.Itoa(p))
		os.Setenv("KAFKA_CONTROLLER_PORT", strconv.Itoa(p+1))
		os.Setenv("KAFKA_STATE_DIR", filepath.Join(os.TempDir(), fmt.Sprintf("emostream-bench-scale-kafka-%d", p)))
		br, err := startBroker(root)
		if err == nil {
			return br, nil
		}
		errs = append(errs, err)
		// A failed start leaves its state dir; `down` removes it.
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "kafka-local.sh"), "down")
		cmd.Stderr = os.Stderr
		_ = cmd.Run()
	}
	return nil, errors.Join(errs...)
}

func portsFree(ports ...int) bool {
	for _, p := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}

func errNote(m *measurement) string {
	if m.ok() {
		return ""
	}
	return " FAILED: " + m.err
}

// runRestore builds a store of d's keys with one run of engine (stores on
// disk, the windows never close), stops it cleanly once its group has
// committed the whole input, then starts it again with the same application
// id and an empty state directory and times the restore from the engine's
// own log: from the first store partition's restore start to the last
// one's end.
func runRestore(ctx context.Context, cfg *config, br *broker, d *dataset, bins map[string]string, engine, input, prefix string) *restoreResult {
	r := &restoreResult{}
	appID := prefix + engine
	output := appID + "-topic2"
	if err := br.createTopic(output, int32(cfg.partitions), keepForever); err != nil {
		r.err = err.Error()
		return r
	}
	args := func(stateDir string) (string, []string) {
		if engine == "ours" {
			return bins["ours"], []string{"-brokers", strings.Join(br.brokers, ","), "-app-id", appID, "-input", input,
				"-output", output, "-dlq", appID + "-dlq", "-guarantee", cfg.guarantee,
				"-commit", fmt.Sprintf("%dms", cfg.commitMs), "-store", "disk", "-state-dir", stateDir}
		}
		a := append([]string{}, cfg.javaOpts...)
		return "java", append(a, "-cp", bins["kstreams-cp"], "emostream.bench.KStreamsBench",
			"--brokers", strings.Join(br.brokers, ","), "--app-id", appID, "--input", input, "--output", output,
			"--guarantee", cfg.guarantee, "--commit-ms", strconv.Itoa(cfg.commitMs),
			"--threads", strconv.Itoa(cfg.ksThreads), "--store", "rocksdb", "--state-dir", stateDir)
	}

	// 1. Fill: process the whole input, then stop cleanly.
	fillDir := filepath.Join(cfg.stateRoot, appID+"-fill")
	bin, a := args(fillDir)
	r.logFile = filepath.Join(cfg.resultsDir, "scale-restore-"+engine+"-fill.log")
	p, err := startLogged(bin, a, r.logFile, nil)
	if err != nil {
		r.err = err.Error()
		return r
	}
	start := time.Now()
	err = waitCommitted(ctx, br, appID, input, d, p.exited, cfg.timeout)
	r.fill = time.Since(start).Seconds()
	p.stop()
	if err != nil {
		r.err = "filling the store: " + err.Error()
		return r
	}
	_ = os.RemoveAll(fillDir) // the local state is lost

	// 2. Restore into an empty state directory.
	restoreDir := filepath.Join(cfg.stateRoot, appID+"-restore")
	bin, a = args(restoreDir)
	if engine == "ours" && cfg.cpuprofile {
		// The profile covers the process's life: start, restore, and the
		// moment until it is stopped once its tasks run.
		a = append(a, "-cpuprofile", filepath.Join(cfg.resultsDir, "scale-ours-restore.pprof"))
	}
	r.logFile = filepath.Join(cfg.resultsDir, "scale-restore-"+engine+".log")
	w := newRestoreWatch(engine, cfg.partitions)
	start = time.Now()
	p, err = startLogged(bin, a, r.logFile, w.line)
	if err != nil {
		r.err = err.Error()
		return r
	}
	defer p.stop()
	timer := time.NewTimer(cfg.timeout)
	defer timer.Stop()
	select {
	case <-w.ready:
		r.ready = time.Since(start).Seconds()
		// Let the log lines of the same moment arrive.
		time.Sleep(300 * time.Millisecond)
	case <-p.exited:
		r.err = "exited before its tasks were running"
		return r
	case <-timer.C:
		r.err = fmt.Sprintf("not running within TIMEOUT=%v", cfg.timeout)
		return r
	case <-ctx.Done():
		r.err = "interrupted"
		return r
	}
	w.mu.Lock()
	r.seconds = w.last.Sub(w.first).Seconds()
	r.records, r.restored = w.records, w.restored
	w.mu.Unlock()
	if r.restored == 0 {
		r.err = "no store restore in the log"
		return r
	}
	// Stopped before its state is deleted (else its stores fail to close).
	p.stop()
	_ = os.RemoveAll(restoreDir)
	return r
}

// proc is a child process whose stdout and stderr go to a log file.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func startLogged(bin string, args []string, logPath string, onLine func(string)) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return nil, err
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(lf, line)
			if onLine != nil {
				onLine(line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = pw.Close()
		<-scanned
		_ = lf.Close()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM and waits, SIGKILL after 60 s.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitCommitted waits until group has committed every input offset.
func waitCommitted(ctx context.Context, br *broker, group, input string, d *dataset, exited <-chan struct{}, timeout time.Duration) error {
	admin, err := sarama.NewClusterAdmin(br.brokers, saramaConfig())
	if err != nil {
		return err
	}
	defer admin.Close()
	parts := make([]int32, d.partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{input: parts})
		if err == nil {
			done := true
			for p := range d.partitions {
				b := resp.GetBlock(input, int32(p))
				if b == nil || b.Offset < int64(d.perPart[p]) {
					done = false
				}
			}
			if done {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("the engine exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("input not committed within %v", timeout)
		}
	}
}

// restoreWatch reads an engine's log during a restore run.
type restoreWatch struct {
	engine     string
	partitions int
	ready      chan struct{}

	mu          sync.Mutex
	first, last time.Time
	records     int64
	restored    int
	added       int
	isReady     bool
}

var (
	ksRestoreStart = regexp.MustCompile(`restore start store=\S+ partition=\d+ .*at=(\d+)`)
	ksRestoreEnd   = regexp.MustCompile(`restore end store=\S+ partition=\d+ records=(\d+) at=(\d+)`)
	oursTime       = regexp.MustCompile(`^time=(\S+)`)
	oursRecords    = regexp.MustCompile(` records=(\d+)`)
	oursTook       = regexp.MustCompile(` took=(\S+)`)
)

func newRestoreWatch(engine string, partitions int) *restoreWatch {
	return &restoreWatch{engine: engine, partitions: partitions, ready: make(chan struct{})}
}

func (w *restoreWatch) line(l string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	note := func(start, end time.Time) {
		if w.first.IsZero() || start.Before(w.first) {
			w.first = start
		}
		if end.After(w.last) {
			w.last = end
		}
	}
	ready := false
	switch w.engine {
	case "kstreams":
		if m := ksRestoreStart.FindStringSubmatch(l); m != nil {
			ms, _ := strconv.ParseInt(m[1], 10, 64)
			note(time.UnixMilli(ms), time.UnixMilli(ms))
		} else if m := ksRestoreEnd.FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			ms, _ := strconv.ParseInt(m[2], 10, 64)
			note(time.UnixMilli(ms), time.UnixMilli(ms))
			w.records += n
			w.restored++
		} else if strings.Contains(l, "-> RUNNING") {
			ready = true
		}
	case "ours":
		switch {
		case strings.Contains(l, `msg="store restored"`):
			tm := oursTime.FindStringSubmatch(l)
			rec := oursRecords.FindStringSubmatch(l)
			took := oursTook.FindStringSubmatch(l)
			if tm == nil || rec == nil || took == nil {
				return
			}
			end, err1 := time.Parse(time.RFC3339Nano, tm[1])
			dur, err2 := time.ParseDuration(took[1])
			n, err3 := strconv.ParseInt(rec[1], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil {
				return
			}
			note(end.Add(-dur), end)
			w.records += n
			w.restored++
		case strings.Contains(l, `msg="tasks assigned"`):
			ready = true
		case strings.Contains(l, `msg="task added"`):
			if w.added++; w.added >= w.partitions {
				ready = true
			}
		}
	}
	if ready && !w.isReady {
		w.isReady = true
		close(w.ready)
	}
}

// ------------------------------------------------------------------ report --

type check struct {
	name        string
	pass        bool
	correctness bool
	detail      string
}

func scaleReport(cfg *config, sc *scaleSettings, rows []scaleRow, details []string, restore *scaleRestore, rr map[string]*restoreResult, floor *scaleFloor, failed bool, took time.Duration) error {
	var sb strings.Builder
	load := "unknown"
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(raw))[:3], " ")
	}
	fmt.Fprintf(&sb, "\nbench-scale: windowed count (2 s tumbling, grace 500 ms, emit on close), ours vs Kafka Streams 4.4.0 on one broker (%s), %s, commit %d ms, %d partitions, %d core(s), QUICK=%v; load average at the end %s\n\n",
		strings.Join(cfgBrokers(), ","), cfg.guarantee, cfg.commitMs, cfg.partitions, runtime.NumCPU(), cfg.quick, load)
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "keys\tstore\tours rec/s\tKS rec/s\tratio\tidentical\tours RSS MiB\tKS RSS MiB\tours CPU µs/rec\tKS CPU µs/rec\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.0f\t%.2f\t%s\t%.0f\t%.0f\t%.2f\t%.2f\t\n", r.Keys, r.Store, r.OursRPS, r.KStreamsRPS,
			r.Ratio, yesNo(r.IdenticalResults), r.OursRSSMB, r.KStreamsRSSMB, r.OursCPUPerRec, r.KStreamsCPUPerRe)
	}
	_ = tw.Flush()
	sb.WriteString("\n")
	for _, d := range details {
		sb.WriteString(d + "\n")
	}
	if floor != nil {
		fmt.Fprintf(&sb, "\nconsumer alone (bench/floor: read the %d-key input, %d records, and count them), CPU per record: sarama (pkg/stream's consumer group) %.2f µs, with the event JSON decoded %.2f µs; franz-go %.2f µs\n",
			floor.Keys, floor.Records, floor.SaramaCPU, floor.SaramaDecodeCPU, floor.KgoCPU)
	}
	if restore != nil {
		fmt.Fprintf(&sb, "\nrestore of %d keys (disk stores, empty state directory): ours %.2fs, Kafka Streams %.2fs, ratio %.2f\n",
			restore.Keys, restore.OursS, restore.KStreamsS, restore.Ratio)
		for _, e := range []string{"ours", "kstreams"} {
			if r := rr[e]; r != nil {
				if r.err != "" {
					fmt.Fprintf(&sb, "  %s: FAILED: %s (log %s)\n", e, r.err, r.logFile)
					continue
				}
				fmt.Fprintf(&sb, "  %s: %d changelog records into %d store partitions in %.2fs = %.0f records/s; tasks running %.2fs after process start\n",
					e, r.records, r.restored, r.seconds, float64(r.records)/r.seconds, r.ready)
			}
		}
	}

	var checks []check
	for _, r := range rows {
		c := check{name: fmt.Sprintf("identical results, keys %d %s", r.Keys, r.Store), pass: r.IdenticalResults, correctness: true}
		if r.OursRPS == 0 || r.KStreamsRPS == 0 {
			c.detail = "an engine failed, see above"
		}
		checks = append(checks, c)
	}
	for _, e := range []string{"ours", "kstreams"} {
		if r := rr[e]; r != nil {
			checks = append(checks, check{name: "restore run of " + e, pass: r.err == "", correctness: true, detail: r.err})
		}
	}
	for _, r := range rows {
		checks = append(checks, check{name: fmt.Sprintf("throughput ratio >= 2, keys %d %s", r.Keys, r.Store), pass: r.Ratio >= 2,
			detail: fmt.Sprintf("%.2f", r.Ratio)})
	}
	for _, store := range sc.stores {
		var lo, hi *scaleRow
		for i := range rows {
			if rows[i].Store != store {
				continue
			}
			if lo == nil || rows[i].Keys < lo.Keys {
				lo = &rows[i]
			}
			if hi == nil || rows[i].Keys > hi.Keys {
				hi = &rows[i]
			}
		}
		if lo != nil && hi != nil && lo != hi {
			checks = append(checks, check{name: fmt.Sprintf("ours at %d keys >= 1/2 of ours at %d keys, %s", hi.Keys, lo.Keys, store),
				pass: hi.OursRPS >= lo.OursRPS/2, detail: fmt.Sprintf("%.0f vs %.0f records/s: %.2f", hi.OursRPS, lo.OursRPS, hi.OursRPS/math.Max(lo.OursRPS, 1))})
		}
	}
	if restore != nil {
		checks = append(checks, check{name: "restore >= 2x faster than Kafka Streams", pass: restore.Ratio >= 2, detail: fmt.Sprintf("%.2fx", restore.Ratio)})
		if o := rr["ours"]; o != nil && o.err == "" && o.seconds > 0 {
			rate := float64(o.records) / o.seconds
			checks = append(checks, check{name: "restore >= 500,000 records/s", pass: rate >= 500_000,
				detail: fmt.Sprintf("%.0f changelog records/s (%.0f keys/s)", rate, float64(restore.Keys)/o.seconds)})
		}
	}
	for _, r := range rows {
		if r.Keys == 16 {
			c := check{name: "CPU per record <= 1.0 µs at 16 keys, " + r.Store, pass: r.OursCPUPerRec > 0 && r.OursCPUPerRec <= 1.0,
				detail: fmt.Sprintf("%.2f µs", r.OursCPUPerRec)}
			if floor != nil && floor.Keys == 16 && floor.SaramaCPU > 0 {
				c.detail += fmt.Sprintf("; sarama's consumer alone %.2f µs", floor.SaramaCPU)
			}
			checks = append(checks, c)
		}
	}
	for _, r := range rows {
		c := check{name: fmt.Sprintf("RSS <= 1/4 of Kafka Streams', keys %d %s", r.Keys, r.Store),
			pass: r.OursRSSMB > 0 && r.OursRSSMB <= r.KStreamsRSSMB/4, detail: fmt.Sprintf("%.0f vs %.0f MiB: %.2f", r.OursRSSMB, r.KStreamsRSSMB, r.OursRSSMB/math.Max(r.KStreamsRSSMB, 1))}
		if r.OursRSSMB == 0 || r.KStreamsRSSMB == 0 {
			c.detail = "no figure: an engine failed"
		}
		checks = append(checks, c)
	}
	sb.WriteString("\nchecks:\n")
	correctFail, targetFail := 0, 0
	for _, c := range checks {
		st := "PASS"
		if !c.pass {
			st = "FAIL"
			if c.correctness {
				correctFail++
			} else {
				targetFail++
			}
		}
		kind := "target"
		if c.correctness {
			kind = "correctness"
		}
		fmt.Fprintf(&sb, "  %s  [%s] %s", st, kind, c.name)
		if c.detail != "" {
			fmt.Fprintf(&sb, " (%s)", c.detail)
		}
		sb.WriteString("\n")
	}
	fmt.Fprintf(&sb, "\n%d correctness failure(s), %d target(s) missed; whole run %.0fs\n", correctFail, targetFail, took.Seconds())
	fmt.Print(sb.String())
	_ = os.WriteFile(filepath.Join(cfg.resultsDir, "scale.txt"), []byte(sb.String()), 0o644)

	out, err := json.MarshalIndent(scaleJSON{Quick: cfg.quick, Rows: rows, Restore: restore, ConsumerFloor: floor}, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(cfg.resultsDir, "scale.json")
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", path)
	if correctFail > 0 || failed {
		return fmt.Errorf("%d correctness check(s) failed", max(correctFail, 1))
	}
	return nil
}

// cfgBrokers names the broker for the report.
func cfgBrokers() []string {
	if v := os.Getenv("KAFKA_BROKERS"); v != "" {
		return splitList(v)
	}
	return []string{"127.0.0.1:" + os.Getenv("KAFKA_PORT")}
}
