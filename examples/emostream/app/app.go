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

	"github.com/emostream/emostream/examples/emostream/aggregation"
	"github.com/emostream/emostream/examples/emostream/api"
	"github.com/emostream/emostream/examples/emostream/dashboard"
	"github.com/emostream/emostream/examples/emostream/internal/httpx"
	"github.com/emostream/emostream/examples/emostream/internal/kafkaprobe"
	"github.com/emostream/emostream/examples/emostream/load"
	"github.com/emostream/emostream/pkg/stream"
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
	// InstanceID, SessionTimeout and HeartbeatInterval are its consumer
	// group membership (--instance-id, --session-timeout,
	// --heartbeat-interval); give them to the runtime with
	// stream.GroupInstanceID, stream.SessionTimeout and
	// stream.HeartbeatInterval. Empty InstanceID: dynamic membership.
	InstanceID                        string
	SessionTimeout, HeartbeatInterval time.Duration
	// StandbyReplicas is --standby-replicas; give it to the runtime with
	// stream.StandbyReplicas.
	StandbyReplicas int
	// Cooperative is --rebalancing cooperative (the default); give it to the
	// runtime with stream.CooperativeRebalancing, which exactly-once ignores.
	Cooperative bool
	// Security is the TLS and SASL of the Kafka connections (--kafka-tls*,
	// --kafka-sasl-*); give it to the runtime with stream.WithSecurity.
	Security stream.Security
	Logger   *slog.Logger
	// Registerer receives the aggregator's metrics; it is the registry that
	// /metrics serves, or nil when nothing serves metrics.
	Registerer prometheus.Registerer
	// Aggregations are the extra aggregations --aggregations selected, to
	// run next to the count (aggregator.Config.Aggregations).
	Aggregations []aggregation.Aggregation
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
	// Aggregations are aggregations of your own (package aggregation) that
	// --aggregations can select besides the built-in ones.
	Aggregations []aggregation.Aggregation
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
	if h := (helpRequest{}); errors.As(err, &h) {
		usage(o.Stdout, h.cmd)
		return exitOK
	}
	if err == nil {
		err = c.selectAggregations(o.Aggregations)
	}
	if err != nil {
		fmt.Fprintf(o.Stderr, "emostream: %v (see %s)\n", oneLine(err), helpHint(o.Args))
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(o.Stderr, &slog.HandlerOptions{Level: c.logLevel}))
	if c.logLevel <= slog.LevelDebug {
		sl := log.With(slog.String("component", "sarama"))
		saramaLog.Store(sl)
		defer saramaLog.CompareAndSwap(sl, nil)
	}
	e := env{Options: o, cfg: c, log: log}
	e.logSecurity()
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

// logSecurity says how Kafka connections are secured, and warns about
// settings that expose the traffic or the password. It never logs the
// password (stream.Security hides it).
func (e *env) logSecurity() {
	c := e.cfg
	if c.command == "load" || !c.securityEnabled() {
		return
	}
	e.log.Info("Kafka connections secured", "security", c.security)
	if c.kafkaTLSInsecure {
		e.log.Warn("--kafka-tls-insecure-skip-verify: broker certificates are not checked; anyone in the path can read the traffic")
	}
	if strings.EqualFold(c.saslMechanism, stream.SASLPlain) && !c.kafkaTLS {
		e.log.Warn("SASL PLAIN without --kafka-tls sends the password in clear text")
	}
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
		InstanceID:  c.instanceID,
		Security:    c.security,
		// Membership.
		SessionTimeout:    c.sessionTimeout,
		HeartbeatInterval: c.heartbeatInterval,
		StandbyReplicas:   c.standbyReplicas,
		Cooperative:       c.rebalancing == "cooperative",
		Logger:            e.log.With("component", "aggregator"),
		Registerer:        reg,
		Aggregations:      c.selected,
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

// startBroker starts the embedded broker. With --data-dir it first checks
// that the directory can be written and has room, and returns a guard that
// reports when it no longer does (nil without --data-dir).
func (e *env) startBroker() (*embedded.Broker, *diskGuard, error) {
	opts := []embedded.Opt{embedded.Addr(e.cfg.brokerListen), embedded.DefaultPartitions(e.cfg.partitions)}
	var guard *diskGuard
	if dir := e.cfg.dataDir; dir != "" {
		if err := checkDataDir(dir); err != nil {
			return nil, nil, err
		}
		if err := checkDataDir(brokerDataDir(dir)); err != nil {
			return nil, nil, err
		}
		guard = newDiskGuard(dir)
		opts = append(opts, embedded.DataDir(brokerDataDir(dir)),
			embedded.Logger(slog.New(guard.handler(e.log.Handler()))))
	}
	b, err := embedded.Start(opts...)
	if err != nil {
		return nil, nil, listenError(err, "--broker-listen", e.cfg.brokerListen)
	}
	e.log.Info("embedded broker started", "addr", strings.Join(b.Addrs(), ","), "data_dir", e.cfg.dataDir)
	return b, guard, nil
}

// retention is the retention of the topics the app creates: --retention on
// the embedded broker (which keeps every record in memory or indexes it in
// memory, so unbounded retention would grow without end), the cluster's
// own default on a real cluster.
func (e *env) retention() time.Duration {
	if len(e.cfg.brokers) == 0 {
		return e.cfg.retention
	}
	return 0
}

// closeBroker stops the embedded broker, which saves its state to
// --data-dir, and turns a failure to write there (now or before) into err.
func closeBroker(b *embedded.Broker, guard *diskGuard, err *error) {
	_ = b.Close()
	if guard == nil {
		return
	}
	if gerr := guard.Err(); gerr != nil && *err == nil {
		*err = gerr
	}
}

// run is everything in one process.
func (e *env) run(ctx context.Context) (err error) {
	c := e.cfg
	brokers := c.brokers
	var guard *diskGuard
	if len(brokers) == 0 {
		var b *embedded.Broker
		b, guard, err = e.startBroker()
		if err != nil {
			return err
		}
		defer closeBroker(b, guard, &err) // last: everything else flushes into it first
		brokers = b.Addrs()
	}
	if err := ensureTopics(ctx, e.log, brokers, c.security, c.partitions, e.retention(), c.appTopics()...); err != nil {
		return err
	}
	if err := ensureTableTopics(ctx, e.log, brokers, c.security, c.partitions, c.tableTopics()...); err != nil {
		return err
	}
	reg := httpx.NewRegistry()
	apiSrv, err := api.New(api.Config{Brokers: brokers, Topic: c.inputTopic, Registry: reg, Logger: e.log, Sarama: c.configureSarama})
	if err != nil {
		return err
	}
	dash, err := dashboard.New(dashboard.Config{Brokers: brokers, Topic: c.outputTopic, Panels: c.panels(), Window: c.window, Grace: c.grace,
		Scale: c.scale, MaxViewers: c.maxViewers, Registry: reg, Logger: e.log, Sarama: c.configureSarama})
	if err != nil {
		return err
	}
	ln, err := httpx.Listen(c.http)
	if err != nil {
		return listenError(err, "--http", c.http)
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
	if guard != nil {
		sup.start(2, "data dir", guard.run)
	}
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
	if err := ensureTopics(ctx, e.log, brokers, e.cfg.security, e.cfg.partitions, 0, e.cfg.inputTopic); err != nil {
		return err
	}
	s, err := api.New(api.Config{Brokers: brokers, Topic: e.cfg.inputTopic, HTTP: e.cfg.http, Logger: e.log,
		Sarama: e.cfg.configureSarama})
	if err != nil {
		return err
	}
	return listenError(s.Run(ctx), "--http", e.cfg.http)
}

func (e *env) dashboard(ctx context.Context) error {
	brokers := e.cfg.kafkaBrokers()
	if err := ensureTopics(ctx, e.log, brokers, e.cfg.security, e.cfg.partitions, 0, append([]string{e.cfg.outputTopic}, e.cfg.aggregationTopics()...)...); err != nil {
		return err
	}
	s, err := dashboard.New(dashboard.Config{Brokers: brokers, Topic: e.cfg.outputTopic, Panels: e.cfg.panels(), HTTP: e.cfg.http,
		Window: e.cfg.window, Grace: e.cfg.grace, Scale: e.cfg.scale, MaxViewers: e.cfg.maxViewers, Logger: e.log, Sarama: e.cfg.configureSarama})
	if err != nil {
		return err
	}
	return listenError(s.Run(ctx), "--http", e.cfg.http)
}

func (e *env) aggregate(ctx context.Context) error {
	if e.Aggregator == nil {
		return errors.New("this build has no aggregator")
	}
	brokers := e.cfg.kafkaBrokers()
	c := e.cfg
	if err := ensureTopics(ctx, e.log, brokers, c.security, c.partitions, e.retention(), c.appTopics()...); err != nil {
		return err
	}
	if err := ensureTableTopics(ctx, e.log, brokers, c.security, c.partitions, c.tableTopics()...); err != nil {
		return err
	}
	if !c.httpSet {
		return e.Aggregator(ctx, e.aggregatorConfig(brokers, nil))
	}
	// With --http given, the aggregator's metrics are served there (the
	// default address belongs to the API, so it is not taken unasked).
	ln, err := httpx.Listen(c.http)
	if err != nil {
		return listenError(err, "--http", c.http)
	}
	reg := httpx.NewRegistry()
	// /healthz is 503 with the reason while Kafka does not serve the
	// aggregator's topics; the aggregator itself keeps retrying.
	probe := kafkaprobe.New(brokers, []string{c.inputTopic, c.outputTopic}, c.configureSarama)
	mux := http.NewServeMux()
	mux.Handle("/metrics", httpx.Metrics(reg))
	mux.Handle("/healthz", httpx.Health(probe.Ready))
	sup := newSupervisor(e.log, 2)
	sup.start(0, "http", func(ctx context.Context) error { return httpx.Serve(ctx, ln, mux, e.log) })
	sup.start(1, "kafka probe", probe.Run)
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

func (e *env) broker(ctx context.Context) (err error) {
	b, guard, err := e.startBroker()
	if err != nil {
		return err
	}
	defer closeBroker(b, guard, &err)
	c := e.cfg
	if err := ensureTopics(ctx, e.log, b.Addrs(), stream.Security{}, c.partitions, c.retention, c.appTopics()...); err != nil {
		return err
	}
	if err := ensureTableTopics(ctx, e.log, b.Addrs(), stream.Security{}, c.partitions, c.tableTopics()...); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "Kafka-protocol broker listening on %s; connect with --brokers %s\n", b.Addrs()[0], b.Addrs()[0])
	if guard == nil {
		<-ctx.Done()
		return nil
	}
	gctx, stop := context.WithCancel(ctx)
	defer stop()
	return guard.run(gctx)
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
