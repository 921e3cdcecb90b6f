package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is the driver's command line; see ParseFlags for each flag.
type Config struct {
	// Scenario is ScenarioFaults, ScenarioRebalance or ScenarioFailover.
	Scenario string
	// Trials of each kind and the JSON summary file of the failover
	// scenario.
	Trials      int
	FailoverOut string
	// Kinds, if not empty, limits the failover scenario to these kinds
	// (comma-separated: kill, scale-out, scale-in, rolling, rolling-static,
	// kill-restart).
	Kinds string
	// Phase is how long the rebalance scenario keeps each group layout
	// under load.
	Phase time.Duration

	// Brokers is an existing Kafka to use; empty starts the driver's own.
	Brokers []string

	// Emojis to send in Duration (so at Rate a second), Batch per request,
	// from Workers concurrent clients.
	Emojis   int
	Duration time.Duration
	Rate     float64
	Batch    int
	Workers  int

	// Aggregators is the number of aggregate processes; Kills, Stops,
	// BrokerRestarts and APIKills how many faults of each kind to inject;
	// RestartDelay the pause between an aggregator's SIGKILL and restart.
	Aggregators    int
	Kills          int
	Stops          int
	BrokerRestarts int
	APIKills       int
	RestartDelay   time.Duration

	// ExactlyOnce, PersistentState (a --data-dir per aggregator),
	// Partitions, Window, Grace and Scale configure the app under test.
	ExactlyOnce     bool
	PersistentState bool
	Partitions      int
	Window, Grace   time.Duration
	Scale           int64

	// SettleTimeout bounds the wait for complete results; Quiet is how long
	// topic2 and the DLQ must stay unchanged (with no lag) to count as
	// complete.
	SettleTimeout time.Duration
	Quiet         time.Duration

	// Repo is the repository root; Bin a prebuilt emostream binary to test
	// instead of building one; WorkDir holds the binary and logs, kept
	// after a pass with Keep; Dump writes the topics there; Race builds
	// with -race; StrictLate fails on Report.LateInTime.
	Repo       string
	Bin        string
	WorkDir    string
	Keep       bool
	Dump       bool
	StrictLate bool
	Race       bool
	// KafkaStateDir, KafkaPort and KafkaControllerPort place the driver's
	// own broker (scripts/kafka-local.sh's KAFKA_* variables).
	KafkaStateDir       string
	KafkaPort           int
	KafkaControllerPort int
	// Cluster is the number of brokers of the driver's own Kafka (0 or 1:
	// one); with 3 or more, LeaderKills and BrokerPauses (each BrokerPause
	// long) join the faults (see cluster.go).
	Cluster      int
	LeaderKills  int
	BrokerPauses int
	BrokerPause  time.Duration
}

// Mode names the aggregators' processing guarantee.
func (c *Config) Mode() string {
	if c.ExactlyOnce {
		return "exactly-once"
	}
	return "at-least-once"
}

// The scenarios.
const (
	// ScenarioFaults is the fault-injection run: SIGKILLs, a stop, a broker
	// restart and an API SIGKILL spread over a fixed number of emojis.
	ScenarioFaults = "faults"
	// ScenarioRebalance scales the aggregators' group 1→2→1→2 gracefully,
	// checks that no result was written twice, then SIGKILLs one (see
	// runRebalance).
	ScenarioRebalance = "rebalance"
	// ScenarioFailover measures how long results are late after kills,
	// restarts and scaling (see runFailover).
	ScenarioFailover = "failover"
)

// Defaults of the rebalance scenario, where they differ from the faults
// scenario's (flags given explicitly still win). Its broker has its own
// state dir and ports, so it never wipes a concurrent `make smoke`'s.
const (
	rebalanceRate           = 400
	rebalanceBatch          = 20
	rebalanceWorkers        = 4
	rebalancePartitions     = 4
	rebalanceKafkaStateDir  = "/tmp/emostream-smoke-rebalance-kafka"
	rebalanceKafkaPort      = 29194
	rebalanceKafkaCtrlPort  = 29195
	rebalanceMaxLoad        = 10 * time.Minute // caps the emojis generated (-emojis is ignored)
	rebalanceDefaultPhase   = 10 * time.Second
	rebalanceMinPhaseQuiet  = 2 * time.Second // a phase lasts at least window + grace + this
	rebalanceAggregatorsMax = 3               // processes started over the run
)

// Sizes of the two standard runs.
const (
	smallEmojis   = 60_000
	smallDuration = 60 * time.Second
	largeEmojis   = 1_000_000
	largeDuration = 150 * time.Second
)

// ParseFlags reads the command line. -large switches the defaults of
// -emojis, -duration and -workers to the large run's; flags given
// explicitly still win.
func ParseFlags(args []string, stderr io.Writer) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: go run ./examples/emostream/smoke [flags]   (or: make smoke [LARGE=1] [SMOKE_ARGS=...],
                                                          make smoke-rebalance [SMOKE_ARGS=...])

Fault-injection smoke test of EmoStream on a real Kafka: starts its own broker
(scripts/kafka-local.sh), one API and several aggregator processes, posts
emojis while it SIGKILLs and stops aggregators, restarts the broker and
SIGKILLs the API, then checks topic1, topic2 and the DLQ exactly.

-scenario rebalance instead runs 1, 2, 1 and 2 aggregators in turn (starts
and SIGTERMs) under a steady load, requires that no topic2 result was
written twice so far, then SIGKILLs one aggregator and restarts it, and
checks the topics exactly; a result written again after the SIGKILL must be
identical to the first (key, value bytes, record timestamp). It defaults to
-rate 400 -batch 20 -workers 4 -partitions 4 and a broker of its own
(-kafka-port 29194, -kafka-state-dir /tmp/emostream-smoke-rebalance-kafka);
-emojis, -duration, -aggregators and the fault counts do not apply.

Flags:
`)
		fs.PrintDefaults()
	}
	var brokers string
	var large bool
	fs.StringVar(&c.Scenario, "scenario", ScenarioFaults, "faults (SIGKILLs, broker restart, API SIGKILL), rebalance (graceful scale-out and scale-in, then a SIGKILL) or failover (times kills, restarts and scaling; see failover.go)")
	fs.DurationVar(&c.Phase, "phase", rebalanceDefaultPhase, "rebalance: how long each group layout runs under load once the group is stable (at least window + grace + 2s)")
	fs.StringVar(&brokers, "brokers", "", "use this Kafka (host:port,...) instead of starting one; broker restarts are then skipped")
	fs.IntVar(&c.Emojis, "emojis", smallEmojis, "emojis to generate")
	fs.DurationVar(&c.Duration, "duration", smallDuration, "planned generation time; faults are spread over it")
	fs.Float64Var(&c.Rate, "rate", 0, "emojis per second (0: -emojis / -duration)")
	fs.IntVar(&c.Batch, "batch", 100, "emojis per POST (1 to 1000)")
	fs.IntVar(&c.Workers, "workers", 8, "concurrent HTTP clients")
	fs.IntVar(&c.Aggregators, "aggregators", 3, "aggregator processes")
	fs.IntVar(&c.Kills, "sigkills", 3, "aggregator SIGKILLs (each followed by a restart)")
	fs.IntVar(&c.Stops, "stops", 1, "aggregators stopped for good (SIGTERM) during the run")
	fs.IntVar(&c.BrokerRestarts, "broker-restarts", 1, "broker restarts (stop, then start on the same data)")
	fs.IntVar(&c.APIKills, "api-kills", 1, "API SIGKILLs under load (each followed by a restart)")
	fs.DurationVar(&c.RestartDelay, "restart-delay", time.Second, "pause between an aggregator's SIGKILL and its restart")
	fs.BoolVar(&c.ExactlyOnce, "exactly-once", false, "run the aggregators with --exactly-once")
	fs.BoolVar(&c.PersistentState, "persistent-state", false, "give each aggregator a --data-dir (on-disk window stores) that its restarts reuse")
	fs.IntVar(&c.Partitions, "partitions", 6, "partitions of the run's topics")
	fs.DurationVar(&c.Window, "window", 2*time.Second, "aggregators' --window")
	fs.DurationVar(&c.Grace, "grace", 2*time.Second, "aggregators' --grace (longer: fewer late records after an outage)")
	fs.Int64Var(&c.Scale, "scale", 10, "aggregators' --scale")
	fs.DurationVar(&c.SettleTimeout, "settle-timeout", 3*time.Minute, "how long to wait for complete results after the generator stops")
	fs.DurationVar(&c.Quiet, "quiet", 3*time.Second, "results count as complete when the lag is 0 and topic2 and the DLQ have not grown for this long")
	fs.BoolVar(&large, "large", false, fmt.Sprintf("the large run: -emojis %d -duration %v -workers 16 unless given", largeEmojis, largeDuration))
	fs.StringVar(&c.Repo, "repo", "", "root of the emostream repository (default: found from the working directory)")
	fs.StringVar(&c.Bin, "bin", "", "test this emostream binary instead of building ./examples/emostream")
	fs.StringVar(&c.WorkDir, "work-dir", "", "directory for the binary and the logs (default: a new temporary one)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the work dir after a pass (it is always kept after a failure)")
	fs.BoolVar(&c.StrictLate, "strict-late", false, "fail on late records that were acknowledged at least 1s before timestamp+grace (default: a warning)")
	fs.BoolVar(&c.Dump, "dump", false, "write the topics read back and the emojis' statuses to the work dir (always done after a failure)")
	fs.BoolVar(&c.Race, "race", false, "build emostream with the race detector")
	fs.IntVar(&c.Cluster, "cluster", 0, "faults: run on a cluster of this many brokers of its own (3: 127.0.0.1:29292,29294,29296, state in /tmp/emostream-smoke-cluster-kafka), with leader SIGKILLs and broker SIGSTOPs; broker restarts restart one broker")
	fs.IntVar(&c.LeaderKills, "leader-kills", 1, "-cluster: SIGKILLs of the broker leading the most topic1/topic2 partitions (each restarted)")
	fs.IntVar(&c.BrokerPauses, "broker-pauses", 1, "-cluster: SIGSTOPs of the aggregators' group coordinator (each SIGCONTed after -broker-pause)")
	fs.DurationVar(&c.BrokerPause, "broker-pause", clusterPause, "-cluster: how long a broker stays SIGSTOPped (longer than the aggregators' session timeout)")
	fs.StringVar(&c.KafkaStateDir, "kafka-state-dir", "/tmp/emostream-smoke-kafka", "KAFKA_STATE_DIR of the driver's own broker (wiped at start and end)")
	fs.IntVar(&c.KafkaPort, "kafka-port", 29192, "KAFKA_PORT of the driver's own broker")
	fs.IntVar(&c.KafkaControllerPort, "kafka-controller-port", 29193, "KAFKA_CONTROLLER_PORT of the driver's own broker")
	fs.IntVar(&c.Trials, "trials", 0, "failover: trials of each kind (default 5)")
	fs.StringVar(&c.Kinds, "kinds", "", "failover: only these kinds, comma-separated (kill, scale-out, scale-in, rolling, rolling-static, kill-restart; default all)")
	fs.StringVar(&c.FailoverOut, "failover-out", "bench/results/failover.json", "failover: where to write the summary (empty: nowhere; relative to the current directory)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.Scenario == ScenarioRebalance {
		steadyLoadDefaults(c, set)
		if !set["kafka-state-dir"] {
			c.KafkaStateDir = rebalanceKafkaStateDir
		}
		if !set["kafka-port"] {
			c.KafkaPort = rebalanceKafkaPort
		}
		if !set["kafka-controller-port"] {
			c.KafkaControllerPort = rebalanceKafkaCtrlPort
		}
		c.Aggregators = rebalanceAggregatorsMax
	}
	clusterDefaults(c, set)
	if large {
		if !set["emojis"] {
			c.Emojis = largeEmojis
		}
		if !set["duration"] {
			c.Duration = largeDuration
		}
		if !set["workers"] {
			c.Workers = 16
		}
	}
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.Brokers = append(c.Brokers, b)
		}
	}
	if c.Rate == 0 && c.Duration > 0 {
		c.Rate = float64(c.Emojis) / c.Duration.Seconds()
	}
	if c.Scenario == ScenarioRebalance {
		// The load runs until the scenario stops it; this only caps it.
		c.Emojis = max(1, int(c.Rate*rebalanceMaxLoad.Seconds()))
	}
	if c.Scenario == ScenarioFailover {
		failoverDefaults(c, set)
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.Scenario != ScenarioFaults && c.Scenario != ScenarioRebalance && c.Scenario != ScenarioFailover {
		bad("-scenario must be %s, %s or %s", ScenarioFaults, ScenarioRebalance, ScenarioFailover)
	}
	if c.Scenario == ScenarioRebalance && c.Phase < c.Window+c.Grace+rebalanceMinPhaseQuiet {
		bad("-phase %v must be at least -window + -grace + %v (%v), so results of the windows a rebalance affected are written within a phase",
			c.Phase, rebalanceMinPhaseQuiet, c.Window+c.Grace+rebalanceMinPhaseQuiet)
	}
	if c.Emojis < 1 {
		bad("-emojis must be positive")
	}
	if c.Duration <= 0 {
		bad("-duration must be positive")
	}
	if c.Rate <= 0 {
		bad("-rate must be positive")
	}
	if c.Batch < 1 || c.Batch > 1000 {
		bad("-batch must be 1 to 1000")
	}
	if c.Workers < 1 {
		bad("-workers must be positive")
	}
	if c.Aggregators < 1 {
		bad("-aggregators must be positive")
	}
	if c.Stops >= c.Aggregators && c.Stops > 0 {
		bad("-stops %d must leave at least one of -aggregators %d running", c.Stops, c.Aggregators)
	}
	if c.Kills < 0 || c.Stops < 0 || c.BrokerRestarts < 0 || c.APIKills < 0 {
		bad("fault counts must not be negative")
	}
	if c.Partitions < 1 {
		bad("-partitions must be positive")
	}
	if c.Window < time.Millisecond || c.Window%time.Millisecond != 0 {
		bad("-window must be a positive whole number of milliseconds")
	}
	if c.Grace < 0 {
		bad("-grace must not be negative")
	}
	if c.Scale < 1 {
		bad("-scale must be positive")
	}
	errs = append(errs, c.validateCluster()...)
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// findRepo returns the root of the emostream module, from dir upwards.
func findRepo(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/emostream/emostream\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no emostream repository at or above %s (use -repo)", dir)
		}
	}
}

// steadyLoadDefaults applies the steady load of the rebalance and failover
// scenarios (rate, batch, workers, partitions) to the flags not given.
func steadyLoadDefaults(c *Config, set map[string]bool) {
	if !set["rate"] {
		c.Rate = rebalanceRate
	}
	if !set["batch"] {
		c.Batch = rebalanceBatch
	}
	if !set["workers"] {
		c.Workers = rebalanceWorkers
	}
	if !set["partitions"] {
		c.Partitions = rebalancePartitions
	}
}
