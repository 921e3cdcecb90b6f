// Command seed runs EmoStream side by side with the stack it replaces (issue
// #13): the original EmoStream's Flask + kafka-python ingest server and
// PySpark Structured Streaming job (bench/seed/server.py and spark_agg.py,
// written to the seed README's description), one after the other on the
// same real Kafka broker, each with topics of its own, and compares ingest
// throughput, result delay, start-up time, CPU, memory and the counts.
//
//	go run ./bench/seed                        # a broker of its own on 127.0.0.1:30592
//	go run ./bench/seed -brokers 127.0.0.1:30592
//
// Per stack ("seed": Flask + Spark; "ours": `emostream api` + `emostream
// aggregate`, the same two roles; neither dashboard runs):
//
//  1. start-up: start the processes, POST an emoji every 50 ms as soon as
//     the API answers, and time the first result on the output topic;
//  2. counts and delay: the same deterministic 20 s schedule of emojis
//     (500/s, timestamps relative to a window boundary) for both stacks,
//     then a 6 s tail of another emoji to move Spark's watermark on; every
//     (window, emoji) count is checked against the schedule, and each
//     result's arrival is timed against its window_end;
//  3. ingest: the project's load client, single-emoji POSTs, 32 keep-alive
//     connections, as fast as they go, 15 s after a 3 s warm-up.
//
// CPU and peak RSS cover each stack's whole process tree (pyspark's JVM
// included). Results: bench/results/seed.json and seed.md (bench/README.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/emostream/emostream/bench/internal/harness"
)

const prog = "seed"

type options struct {
	brokers    []string
	kafkaPort  int
	kafkaDir   string
	cacheDir   string
	systems    []string
	partitions int
	rate       int
	countDur   time.Duration
	tail       time.Duration
	ingestDur  time.Duration
	warmup     time.Duration
	clients    int
	startup    time.Duration
	resultWait time.Duration
	bin        string
	out        string
	logDir     string
}

var allSystems = []string{"seed", "ours"}

func parseFlags(root string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench/seed [flags]\n\nRuns the seed stack (Flask + kafka-python + PySpark) and EmoStream on one Kafka broker\nand writes %s. Flags:\n", o.out)
		fs.PrintDefaults()
	}
	home, _ := os.UserHomeDir()
	brokers := fs.String("brokers", "", "bootstrap `list` of a running Kafka; empty: start one with scripts/kafka-local.sh on -kafka-port")
	fs.IntVar(&o.kafkaPort, "kafka-port", 30592, "client `port` of the broker started when -brokers is empty (controller: port+1)")
	fs.StringVar(&o.kafkaDir, "kafka-dir", "/tmp/emostream-kafka-seedbench", "state `directory` of that broker")
	fs.StringVar(&o.cacheDir, "cache", filepath.Join(home, ".cache", "emostream", "seed"), "`directory` for the seed's venv and Spark's Ivy cache")
	systems := fs.String("systems", strings.Join(allSystems, ","), "`list` of stacks to run, in order: seed, ours")
	fs.IntVar(&o.partitions, "partitions", 4, "partitions of every topic")
	fs.IntVar(&o.rate, "rate", 500, "emojis/s of the count phase")
	fs.DurationVar(&o.countDur, "count-duration", 20*time.Second, "length of the count phase's schedule (a multiple of the 2 s window)")
	fs.DurationVar(&o.tail, "tail", 6*time.Second, "emojis of another kind after the schedule, so Spark's watermark passes its last window")
	fs.DurationVar(&o.ingestDur, "ingest-duration", 15*time.Second, "measured time of the ingest phase")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured load before the ingest phase")
	fs.IntVar(&o.clients, "clients", 32, "keep-alive connections of the ingest phase")
	fs.DurationVar(&o.startup, "startup-timeout", 5*time.Minute, "how long a stack may take to its first result")
	fs.DurationVar(&o.resultWait, "result-wait", 3*time.Minute, "how long after the count phase's schedule its results may take")
	fs.StringVar(&o.bin, "bin", "", "a prebuilt emostream `binary` (default: go build ./examples/emostream)")
	fs.StringVar(&o.out, "out", filepath.Join(root, "bench", "results", "seed.json"), "where to write the results (and the table next to it, .md)")
	fs.StringVar(&o.logDir, "logs", filepath.Join(root, "bench", "results"), "`directory` for the processes' logs (seed-*.log)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.brokers = harness.SplitList(*brokers)
	o.systems = harness.SplitList(*systems)
	var errs []error
	for _, s := range o.systems {
		if !slices.Contains(allSystems, s) {
			errs = append(errs, fmt.Errorf("-systems: unknown stack %q (have %s)", s, strings.Join(allSystems, ", ")))
		}
	}
	if len(o.systems) == 0 {
		errs = append(errs, errors.New("-systems is empty"))
	}
	if o.rate < 1 || o.clients < 1 || o.partitions < 1 {
		errs = append(errs, errors.New("-rate, -clients and -partitions must be positive"))
	}
	if o.countDur < window || o.countDur%window != 0 {
		errs = append(errs, fmt.Errorf("-count-duration must be a positive multiple of %v", window))
	}
	if o.ingestDur <= 0 || o.warmup < 0 || o.tail < time.Second || o.startup <= 0 || o.resultWait <= 0 {
		errs = append(errs, errors.New("-ingest-duration, -startup-timeout and -result-wait must be positive, -warmup not negative, -tail at least 1s"))
	}
	if o.kafkaPort < 1 || o.kafkaPort > 65534 {
		errs = append(errs, errors.New("-kafka-port must be a port number"))
	}
	return o, errors.Join(errs...)
}

func main() { harness.Main(prog, parseFlags, run) }

func logf(format string, args ...any) { harness.Logf(prog, format, args...) }

func run(ctx context.Context, root string, o *options) (bool, error) {
	if err := os.MkdirAll(o.logDir, 0o755); err != nil {
		return false, err
	}
	var env *seedEnv
	if slices.Contains(o.systems, "seed") {
		var err error
		if env, err = prepareSeed(root, o.cacheDir); err != nil {
			return false, fmt.Errorf("preparing the seed stack: %w", err)
		}
	}
	bin := o.bin
	if bin == "" && slices.Contains(o.systems, "ours") {
		var cleanup func()
		var err error
		bin, cleanup, err = harness.Emostream(prog, root, bin, "emostream-seed-")
		defer cleanup()
		if err != nil {
			return false, err
		}
	}
	brokers := o.brokers
	if len(brokers) == 0 {
		addr, stopKafka, err := startKafka(root, o.kafkaPort, o.kafkaDir)
		if err != nil {
			return false, err
		}
		if stopKafka != nil {
			defer stopKafka()
		}
		brokers = []string{addr}
	}
	prefix := "emostream-seed-" + harness.RunID() + "-"
	defer func() {
		n, err := harness.DeleteByPrefix(brokers, prefix, "emostream-aggregator-"+prefix)
		if err != nil {
			logf("cleanup: %v", err)
		}
		logf("cleanup: deleted %d topics of this run", n)
	}()

	r := &report{
		RunInfo:      harness.NewRunInfo("Kafka " + strings.Join(brokers, ",")),
		LoadAvgStart: loadAvg(),
		Settings: settings{
			Partitions: o.partitions, WindowMS: window.Milliseconds(), GraceMS: grace.Milliseconds(),
			CountRate: o.rate, CountSeconds: o.countDur.Seconds(), TailSeconds: o.tail.Seconds(),
			IngestClients: o.clients, IngestSeconds: o.ingestDur.Seconds(), WarmupSeconds: o.warmup.Seconds(),
		},
	}
	sched := makeSchedule(o.rate, o.countDur)
	for _, name := range o.systems {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		st := &stack{name: name, in: prefix + name + "-topic1", out: prefix + name + "-topic2",
			dlq: prefix + name + "-topic1.dlq", brokers: brokers, logDir: o.logDir, bin: bin, env: env}
		topics := []string{st.in, st.out}
		if name == "ours" {
			topics = append(topics, st.dlq)
		}
		if err := createTopics(brokers, o.partitions, topics...); err != nil {
			return false, err
		}
		res, err := measure(ctx, st, sched, o)
		if err != nil {
			return false, fmt.Errorf("%s: %w", name, err)
		}
		r.Systems = append(r.Systems, res)
	}
	r.LoadAvgEnd = loadAvg()
	r.compare()
	md := r.markdown()
	fmt.Print(md)
	if err := harness.WriteJSON(o.out, r); err != nil {
		return false, err
	}
	mdPath := strings.TrimSuffix(o.out, filepath.Ext(o.out)) + ".md"
	if err := os.WriteFile(mdPath, []byte(md), 0o644); err != nil {
		return false, err
	}
	logf("wrote %s and %s", o.out, mdPath)
	ok := r.EqualCounts || len(r.Systems) == 1
	for _, s := range r.Systems {
		ok = ok && s.Counts.Matches && len(s.Problems) == 0
	}
	return ok, nil
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}
