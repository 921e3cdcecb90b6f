package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emostream/emostream/examples/emostream/api"
	"github.com/emostream/emostream/examples/emostream/dashboard"
	"github.com/emostream/emostream/examples/emostream/internal/httpx"
	"github.com/emostream/emostream/examples/emostream/load"
	"github.com/emostream/emostream/pkg/stream/embedded"
)

// AggregatorConfig is what the windowed aggregator needs, taken from the
// flags. main.go copies it field by field into aggregator.Config.
type AggregatorConfig struct {
	Brokers                           []string
	InputTopic, OutputTopic, DLQTopic string
	Partitions                        int32
	Window, Grace                     time.Duration
	Scale                             int64
	// StateDir is <data-dir>/aggregator, or empty (state in memory, restored
	// from changelogs) without --data-dir.
	StateDir string
	// ExactlyOnce runs the aggregator with Kafka transactions (--exactly-once).
	ExactlyOnce bool
	Logger      *slog.Logger
	// Registerer receives the aggregator's metrics; it is the registry that
	// /metrics serves, or nil when nothing serves metrics.
	Registerer prometheus.Registerer
}

// AggregatorFunc runs the windowed aggregator until ctx is cancelled,
// committing its work before it returns.
type AggregatorFunc func(ctx context.Context, cfg AggregatorConfig) error

// Options are the process's surroundings, so tests can run [Main] in
// process.
type Options struct {
	// Args are the command-line arguments without the program name.
	Args []string
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
	// Stdout receives what a person must see (the dashboard URL, the load
	// summary); Stderr receives logs and errors. Both default to the
	// process's.
	Stdout, Stderr io.Writer
	// Aggregator runs the windowed aggregator. Nil leaves `run` without one
	// (with a warning) and makes `aggregate` fail.
	Aggregator AggregatorFunc
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Main runs the command line in o until ctx is cancelled (SIGINT/SIGTERM in
// main.go) and returns the process exit code.
func Main(ctx context.Context, o Options) int {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	c, err := parse(o.Args, o.Getenv)
	if errors.Is(err, errHelp) {
		usage(o.Stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(o.Stderr, "emostream: %v (see emostream -h)\n", oneLine(err))
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(o.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e := env{Options: o, cfg: c, log: log}
	switch c.command {
	case "api":
		err = e.api(ctx)
	case "aggregate":
		err = e.aggregate(ctx)
	case "dashboard":
		err = e.dashboard(ctx)
	case "load":
		err = e.load(ctx)
	case "broker":
		err = e.broker(ctx)
	default:
		err = e.run(ctx)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil // interrupted while starting: as graceful as any other stop
	}
	if err != nil {
		fmt.Fprintf(o.Stderr, "emostream %s: %v\n", c.command, oneLine(err))
		return exitError
	}
	return exitOK
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// env carries what every subcommand needs.
type env struct {
	Options
	cfg *config
	log *slog.Logger
}

func (e *env) aggregatorConfig(brokers []string, reg prometheus.Registerer) AggregatorConfig {
	c := e.cfg
	return AggregatorConfig{
		Brokers:     brokers,
		InputTopic:  c.inputTopic,
		OutputTopic: c.outputTopic,
		DLQTopic:    c.dlqTopic,
		Partitions:  c.partitions,
		Window:      c.window,
		Grace:       c.grace,
		Scale:       c.scale,
		StateDir:    e.stateDir(),
		ExactlyOnce: c.exactlyOnce,
		Logger:      e.log.With("component", "aggregator"),
		Registerer:  reg,
	}
}

// stateDir is where the aggregator keeps its local state: under --data-dir,
// so it survives restarts together with the embedded broker's log. Without
// it everything lives in memory, and so does the state.
func (e *env) stateDir() string {
	if e.cfg.dataDir == "" {
		return ""
	}
	return filepath.Join(e.cfg.dataDir, "aggregator")
}

func (e *env) startBroker() (*embedded.Broker, error) {
	opts := []embedded.Opt{embedded.Addr(e.cfg.brokerListen), embedded.DefaultPartitions(e.cfg.partitions)}
	if e.cfg.dataDir != "" {
		opts = append(opts, embedded.DataDir(filepath.Join(e.cfg.dataDir, "broker")))
	}
	b, err := embedded.Start(opts...)
	if err != nil {
		return nil, err
	}
	e.log.Info("embedded broker started", "addr", strings.Join(b.Addrs(), ","), "data_dir", e.cfg.dataDir)
	return b, nil
}

// run is everything in one process.
func (e *env) run(ctx context.Context) error {
	c := e.cfg
	brokers := c.brokers
	if len(brokers) == 0 {
		b, err := e.startBroker()
		if err != nil {
			return err
		}
		defer b.Close() // last: everything else flushes into it first
		brokers = b.Addrs()
	}
	if err := ensureTopics(ctx, e.log, brokers, c.partitions, c.inputTopic, c.outputTopic, c.dlqTopic); err != nil {
		return err
	}
	reg := httpx.NewRegistry()
	apiSrv, err := api.New(api.Config{Brokers: brokers, Topic: c.inputTopic, Registry: reg, Logger: e.log})
	if err != nil {
		return err
	}
	dash, err := dashboard.New(dashboard.Config{Brokers: brokers, Topic: c.outputTopic, Window: c.window, Grace: c.grace,
		Scale: c.scale, Registry: reg, Logger: e.log})
	if err != nil {
		return err
	}
	ln, err := httpx.Listen(c.http)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/api", apiSrv.Handler())
	mux.Handle("/healthz", httpx.Health(apiSrv.Ready, dash.Ready))
	mux.Handle("/metrics", httpx.Metrics(reg))
	mux.Handle("/", dash.Handler())
	base := baseURL(ln.Addr())

	// Stages stop in this order: load, HTTP and API, aggregator and
	// dashboard; the broker closes after Main's deferred calls.
	sup := newSupervisor(e.log, 3)
	sup.start(1, "http", func(ctx context.Context) error { return httpx.Serve(ctx, ln, mux, e.log, dash.CloseStreams) })
	sup.start(1, "api", apiSrv.Run)
	sup.start(2, "dashboard", dash.Run)
	if e.Aggregator != nil {
		acfg := e.aggregatorConfig(brokers, reg)
		sup.start(2, "aggregator", func(ctx context.Context) error { return e.Aggregator(ctx, acfg) })
	} else {
		e.log.Warn("no aggregator in this build: window results will not be computed")
	}
	if c.loadClients > 0 {
		lc, err := load.New(load.Config{Target: base, Clients: c.loadClients, Rate: c.rate, Batch: c.batch})
		if err != nil {
			sup.stop()
			return err
		}
		sup.start(0, "load", func(ctx context.Context) error {
			// The simulated clients start once the API can take emojis, so
			// the first seconds are not a burst of 503s.
			if !waitFor(ctx, func() bool { return apiSrv.Ready() == nil }) {
				return nil
			}
			err := lc.Run(ctx)
			s := lc.Summary()
			e.log.Info("simulated clients stopped", "accepted", s.Accepted, "errors", s.Errors)
			if errors.Is(err, load.ErrNothingAccepted) {
				return nil // reported above; not a reason to stop the app
			}
			return err
		})
	}

	fmt.Fprintf(e.Stdout, "EmoStream is running.\n  dashboard:  %s/\n  ingest API: POST %s/api\n  Kafka:      %s\nPress Ctrl-C to stop.\n",
		base, base, strings.Join(brokers, ","))
	return sup.wait(ctx)
}

func (e *env) api(ctx context.Context) error {
	brokers := e.cfg.kafkaBrokers()
	if err := ensureTopics(ctx, e.log, brokers, e.cfg.partitions, e.cfg.inputTopic); err != nil {
		return err
	}
	s, err := api.New(api.Config{Brokers: brokers, Topic: e.cfg.inputTopic, HTTP: e.cfg.http, Logger: e.log})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

func (e *env) dashboard(ctx context.Context) error {
	brokers := e.cfg.kafkaBrokers()
	if err := ensureTopics(ctx, e.log, brokers, e.cfg.partitions, e.cfg.outputTopic); err != nil {
		return err
	}
	s, err := dashboard.New(dashboard.Config{Brokers: brokers, Topic: e.cfg.outputTopic, HTTP: e.cfg.http,
		Window: e.cfg.window, Grace: e.cfg.grace, Scale: e.cfg.scale, Logger: e.log})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

func (e *env) aggregate(ctx context.Context) error {
	if e.Aggregator == nil {
		return errors.New("this build has no aggregator")
	}
	brokers := e.cfg.kafkaBrokers()
	c := e.cfg
	if err := ensureTopics(ctx, e.log, brokers, c.partitions, c.inputTopic, c.outputTopic, c.dlqTopic); err != nil {
		return err
	}
	if !c.httpSet {
		return e.Aggregator(ctx, e.aggregatorConfig(brokers, nil))
	}
	// With --http given, the aggregator's metrics are served there (the
	// default address belongs to the API, so it is not taken unasked).
	ln, err := httpx.Listen(c.http)
	if err != nil {
		return err
	}
	reg := httpx.NewRegistry()
	mux := http.NewServeMux()
	mux.Handle("/metrics", httpx.Metrics(reg))
	mux.Handle("/healthz", httpx.Health())
	sup := newSupervisor(e.log, 2)
	sup.start(0, "http", func(ctx context.Context) error { return httpx.Serve(ctx, ln, mux, e.log) })
	sup.start(1, "aggregator", func(ctx context.Context) error { return e.Aggregator(ctx, e.aggregatorConfig(brokers, reg)) })
	e.log.Info("aggregator metrics", "url", baseURL(ln.Addr())+"/metrics")
	return sup.wait(ctx)
}

func (e *env) load(ctx context.Context) error {
	c := e.cfg
	lc, err := load.New(load.Config{Target: c.target, Clients: c.clients, Rate: c.rate, Duration: c.duration,
		Batch: c.batch, Progress: e.Stdout})
	if err != nil {
		return err
	}
	return lc.Run(ctx)
}

func (e *env) broker(ctx context.Context) error {
	b, err := e.startBroker()
	if err != nil {
		return err
	}
	defer b.Close()
	c := e.cfg
	if err := ensureTopics(ctx, e.log, b.Addrs(), c.partitions, c.inputTopic, c.outputTopic, c.dlqTopic); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "Kafka-protocol broker listening on %s; connect with --brokers %s\n", b.Addrs()[0], b.Addrs()[0])
	<-ctx.Done()
	return nil
}

// baseURL is the URL people can open for a listener: a wildcard address is
// reached through the loopback interface.
func baseURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return "http://" + a.String()
	}
	host := tcp.IP.String()
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}

// waitFor polls ok until it holds (true) or ctx ends (false).
func waitFor(ctx context.Context, ok func() bool) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !ok() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}
