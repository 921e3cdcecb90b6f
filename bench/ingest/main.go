// Command ingest measures the EmoStream ingest API's throughput (issue #6):
// emojis per second accepted and acknowledged by Kafka (answered 202), for
// single-object POSTs and for batches.
//
//	go run ./bench/ingest                                   # embedded broker, 20 s per mode
//	go run ./bench/ingest -brokers 127.0.0.1:29092
//
// It builds the emostream binary and starts, as child processes, `emostream
// broker` (the embedded broker; not with -brokers) and `emostream api
// --brokers ...`, then drives the API with the project's load client
// (examples/emostream/load, in this process) at rate 0 (as fast as it can)
// in each mode: "single" (one object per POST, many keep-alive clients) and
// "batch" (arrays of 100). Each mode gets an unmeasured warm-up first. It
// reports emojis/s, errors and request latency percentiles, the CPU time of
// the API, the broker and the load client, checks that the input topic
// holds at least as many records as the API acknowledged, and writes
// bench/results/ingest.json (schema in bench/README.md).
//
// The load client, the API and the broker share the machine's cores, so the
// figures are those of the whole loopback system, not of the API alone.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emostream/emostream/bench/internal/harness"
	"github.com/emostream/emostream/examples/emostream/load"
)

const prog = "ingest"

type options struct {
	brokers       []string
	duration      time.Duration
	warmup        time.Duration
	modes         []string
	singleClients int
	batchClients  int
	batchSize     int
	partitions    int
	targetSingle  float64
	targetBatch   float64
	bin           string
	out           string
	logDir        string
	cpuprofile    string
}

var allModes = []string{"single", "batch"}

func parseFlags(root string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench/ingest [flags]\n\nMeasures the emojis/s the ingest API accepts (202) with single POSTs and with batches,\nand writes %s. Flags:\n", o.out)
		fs.PrintDefaults()
	}
	brokers := fs.String("brokers", "", "bootstrap `list` of a real Kafka (e.g. 127.0.0.1:29092); empty: the embedded broker (emostream broker)")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured time per mode")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured load before each mode")
	modes := fs.String("modes", strings.Join(allModes, ","), "`list` of modes to run: single, batch")
	fs.IntVar(&o.singleClients, "single-clients", 128, "keep-alive clients in single mode")
	fs.IntVar(&o.batchClients, "batch-clients", 8, "keep-alive clients in batch mode")
	fs.IntVar(&o.batchSize, "batch", 100, "emojis per request in batch mode (2 to 1000)")
	fs.IntVar(&o.partitions, "partitions", 4, "partitions of the input topic")
	fs.Float64Var(&o.targetSingle, "target-single", 15000, "target emojis/s with single POSTs")
	fs.Float64Var(&o.targetBatch, "target-batch", 50000, "target emojis/s with batches")
	fs.StringVar(&o.bin, "bin", "", "a prebuilt emostream `binary` (default: go build ./examples/emostream)")
	fs.StringVar(&o.out, "out", filepath.Join(root, "bench", "results", "ingest.json"), "where to write the results")
	fs.StringVar(&o.logDir, "logs", filepath.Join(root, "bench", "results"), "`directory` for the child processes' logs (ingest-*.log)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the load client (this process) to `file`")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.brokers = harness.SplitList(*brokers)
	o.modes = harness.SplitList(*modes)
	var errs []error
	for _, m := range o.modes {
		if !slices.Contains(allModes, m) {
			errs = append(errs, fmt.Errorf("-modes: unknown mode %q (have %s)", m, strings.Join(allModes, ", ")))
		}
	}
	switch {
	case len(o.modes) == 0:
		errs = append(errs, errors.New("-modes is empty"))
	case o.duration <= 0:
		errs = append(errs, errors.New("-duration must be positive"))
	case o.warmup < 0:
		errs = append(errs, errors.New("-warmup must not be negative"))
	case o.singleClients < 1 || o.batchClients < 1:
		errs = append(errs, errors.New("-single-clients and -batch-clients must be positive"))
	case o.batchSize < 2 || o.batchSize > 1000:
		errs = append(errs, errors.New("-batch must be 2 to 1000"))
	case o.partitions < 1:
		errs = append(errs, errors.New("-partitions must be positive"))
	}
	return o, errors.Join(errs...)
}

func main() { harness.Main(prog, parseFlags, run) }

func logf(format string, args ...any) { harness.Logf(prog, format, args...) }

// run does the measurement; ok is false when a mode had nothing accepted or
// the topic holds fewer records than were acknowledged.
func run(ctx context.Context, root string, o *options) (ok bool, err error) {
	if err := os.MkdirAll(o.logDir, 0o755); err != nil {
		return false, err
	}
	bin, cleanup, err := harness.Emostream(prog, root, o.bin, "emostream-ingest-")
	defer cleanup()
	if err != nil {
		return false, err
	}

	var procs []*harness.Proc
	defer func() {
		for _, p := range slices.Backward(procs) {
			_ = p.Stop(30 * time.Second)
		}
	}()
	topic := "topic1"
	brokers := o.brokers
	brokerDesc := "Kafka " + strings.Join(brokers, ",")
	var broker *harness.Proc
	if len(brokers) == 0 {
		addr, err := harness.FreeAddr()
		if err != nil {
			return false, err
		}
		args := []string{"broker", "--broker-listen", addr, "--partitions", strconv.Itoa(o.partitions)}
		logf("starting emostream %s", strings.Join(args, " "))
		if broker, err = harness.Start("emostream broker", bin, args, filepath.Join(o.logDir, "ingest-broker.log")); err != nil {
			return false, err
		}
		procs = append(procs, broker)
		if err := harness.WaitTCP(addr, 30*time.Second); err != nil {
			return false, err
		}
		brokers = []string{addr}
		brokerDesc = "embedded (emostream broker, a separate process)"
	} else {
		// A topic name unique to this run: the broker may be shared.
		prefix := "emostream-ingest-" + harness.RunID() + "-"
		topic = prefix + "topic1"
		defer func() {
			n, err := harness.DeleteByPrefix(o.brokers, prefix)
			if err != nil {
				logf("cleanup: %v", err)
			}
			logf("cleanup: deleted %d topics of this run", n)
		}()
	}
	// The broker's CPU time: the embedded one's, or that of the local Kafka
	// of scripts/kafka-local.sh (which counts every client of that broker).
	localKafka := 0
	if broker == nil {
		localKafka = harness.LocalKafkaPID(brokers)
	}
	brokerCPU := func() (float64, bool) {
		var v float64
		var err error
		switch {
		case broker != nil:
			v, err = broker.CPUSeconds()
		case localKafka > 0:
			v, err = harness.CPUSeconds(localKafka)
		default:
			return 0, false
		}
		return v, err == nil
	}
	httpAddr, err := harness.FreeAddr()
	if err != nil {
		return false, err
	}
	args := []string{"api", "--brokers", strings.Join(brokers, ","), "--http", httpAddr,
		"--input-topic", topic, "--partitions", strconv.Itoa(o.partitions)}
	logf("starting emostream %s", strings.Join(args, " "))
	api, err := harness.Start("emostream api", bin, args, filepath.Join(o.logDir, "ingest-api.log"))
	if err != nil {
		return false, err
	}
	procs = append(procs, api)
	base := "http://" + httpAddr
	if err := harness.WaitHealthy(ctx, api, base+"/healthz", 60*time.Second); err != nil {
		return false, err
	}
	recordsBefore, err := harness.TopicRecords(brokers, topic)
	if err != nil {
		return false, err
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
			logf("wrote the load client's CPU profile to %s", o.cpuprofile)
		}()
	}

	r := &report{
		RunInfo: harness.NewRunInfo(brokerDesc),
		Note: fmt.Sprintf("the load client (this process), the API and the broker share the machine's %d cores over loopback",
			harness.ThisMachine().Cores),
		DurationSeconds: o.duration.Seconds(),
		WarmupSeconds:   o.warmup.Seconds(),
	}
	var acceptedTotal int64
	for _, name := range o.modes {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		cfg := load.Config{Target: base, Rate: 0, Clients: o.singleClients, Batch: 1}
		target := o.targetSingle
		if name == "batch" {
			cfg.Clients, cfg.Batch, target = o.batchClients, o.batchSize, o.targetBatch
		}
		if o.warmup > 0 {
			wcfg := cfg
			wcfg.Duration = o.warmup
			s, err := runLoad(ctx, wcfg, nil)
			if err != nil {
				return false, fmt.Errorf("%s warm-up: %w", name, err)
			}
			acceptedTotal += s.Accepted
			logf("%s warm-up: %d emojis accepted in %v (not counted)", name, s.Accepted, s.Elapsed.Round(time.Millisecond))
		}
		logf("%s: %d clients, batch %d, as fast as they can, for %v...", name, cfg.Clients, cfg.Batch, o.duration)
		apiCPU0, _ := api.CPUSeconds()
		brokerCPU0, brokerOK := brokerCPU()
		self0 := harness.SelfCPUSeconds()
		cfg.Duration = o.duration
		s, err := runLoad(ctx, cfg, os.Stderr)
		if err != nil && !errors.Is(err, load.ErrNothingAccepted) {
			return false, fmt.Errorf("%s: %w", name, err)
		}
		acceptedTotal += s.Accepted
		m := modeResult{
			Name: name, Clients: cfg.Clients, Batch: cfg.Batch,
			ElapsedSeconds: harness.Round(s.Elapsed.Seconds(), 3),
			Requests:       s.Requests, Accepted: s.Accepted, Errors: s.Errors, Behind: s.Behind,
			ByStatus: map[string]int64{},
			P50MS:    ms(s.P50), P99MS: ms(s.P99), MaxMS: ms(s.Max),
			TargetEmojisPerSecond: target,
		}
		for code, n := range s.ByStatus {
			k := fmt.Sprint(code)
			if code == 0 {
				k = "transport"
			}
			m.ByStatus[k] = n
		}
		if secs := s.Elapsed.Seconds(); secs > 0 {
			m.EmojisPerSecond = harness.Round(float64(s.Accepted)/secs, 0)
			m.RequestsPerSecond = harness.Round(float64(s.Requests)/secs, 0)
		}
		m.MeetsTarget = m.EmojisPerSecond >= target
		apiCPU1, _ := api.CPUSeconds()
		m.CPUSeconds.API = harness.Round(apiCPU1-apiCPU0, 2)
		m.CPUSeconds.Broker = -1
		if b1, ok := brokerCPU(); ok && brokerOK {
			m.CPUSeconds.Broker = harness.Round(b1-brokerCPU0, 2)
		}
		m.CPUSeconds.Load = harness.Round(harness.SelfCPUSeconds()-self0, 2)
		if rss, err := api.PeakRSSMB(); err == nil {
			m.APIPeakRSSMB = harness.Round(rss, 1)
		}
		r.Modes = append(r.Modes, m)
	}
	recordsAfter, err := harness.TopicRecords(brokers, topic)
	if err != nil {
		return false, err
	}
	r.Check = checkInfo{AcceptedTotal: acceptedTotal, TopicRecords: recordsAfter - recordsBefore}
	// The load client lets the requests under way at the end of a run
	// finish, so the topic holds exactly what was acknowledged, unless a
	// request failed (a 503 after part of a batch was sent leaves records
	// that were never acknowledged): more then, never fewer.
	r.Check.AllAcknowledgedInTopic = r.Check.TopicRecords >= acceptedTotal

	stopErrs := []string{}
	for _, p := range slices.Backward(procs) {
		if err := p.Stop(30 * time.Second); err != nil {
			stopErrs = append(stopErrs, err.Error())
		}
	}
	procs = nil
	r.Problems = stopErrs
	r.print(os.Stdout)
	if err := harness.WriteJSON(o.out, r); err != nil {
		return false, err
	}
	logf("wrote %s", o.out)
	ok = r.Check.AllAcknowledgedInTopic && len(stopErrs) == 0
	for _, m := range r.Modes {
		ok = ok && m.Accepted > 0
	}
	return ok, nil
}

// runLoad runs the load client with cfg; progress (if not nil) gets its
// progress lines and summary.
func runLoad(ctx context.Context, cfg load.Config, progress *os.File) (load.Summary, error) {
	if progress != nil {
		cfg.Progress = progress
	} else {
		cfg.Progress = nil
	}
	c, err := load.New(cfg)
	if err != nil {
		return load.Summary{}, err
	}
	err = c.Run(ctx)
	return c.Summary(), err
}

func ms(d time.Duration) float64 { return harness.Round(float64(d)/float64(time.Millisecond), 3) }
