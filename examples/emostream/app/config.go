package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/examples/emostream/aggregation"
	"github.com/emostream/emostream/examples/emostream/dashboard"
	"github.com/emostream/emostream/pkg/stream"
)

// EnvPrefix starts the environment variable of every flag.
const EnvPrefix = "EMOSTREAM_"

// Subcommands, in the order usage lists them.
var subcommands = []struct{ name, what string }{
	{"run", "everything in one process (the default)"},
	{"api", "the ingest API alone"},
	{"aggregate", "the windowed aggregator alone (scale out by starting more)"},
	{"dashboard", "the dashboard alone"},
	{"load", "the load client: --target URL --clients N --rate R --duration D"},
	{"broker", "the embedded Kafka-protocol broker alone"},
}

// config is the parsed command line.
type config struct {
	command string

	brokers      []string
	brokerListen string
	dataDir      string
	http         string
	httpSet      bool // --http given explicitly (flag or environment)
	inputTopic   string
	outputTopic  string
	dlqTopic     string
	partitions   int32
	window       time.Duration
	grace        time.Duration
	scale        int64
	loadClients  int
	maxViewers   int
	exactlyOnce  bool
	retention    time.Duration
	// aggregations is --aggregations as given; selected is what it
	// resolved to (selectAggregations), the count left out.
	aggregations string
	selected     []aggregation.Aggregation

	// Consumer group membership of the aggregator (--instance-id,
	// --session-timeout, --heartbeat-interval, --standby-replicas).
	instanceID        string
	sessionTimeout    time.Duration
	heartbeatInterval time.Duration
	standbyReplicas   int
	rebalancing       string
	usersTopic        string

	target   string
	clients  int
	rate     float64
	duration time.Duration
	batch    int

	// Kafka connection security (--kafka-tls*, --kafka-sasl-*).
	kafkaTLS         bool
	kafkaTLSCA       string
	kafkaTLSCert     string
	kafkaTLSKey      string
	kafkaTLSInsecure bool
	saslMechanism    string
	saslUser         string
	saslPassword     string
	// security is built from the fields above by validate.
	security stream.Security

	// logLevel is the lowest level logged (--log-level).
	logLevel slog.Level
}

// secretFlags are flags whose values must never be printed.
var secretFlags = map[string]bool{"kafka-sasl-password": true}

// parse reads the subcommand, the environment and the flags.
func parse(args []string, getenv func(string) string) (*config, error) {
	c := &config{command: "run"}
	explicit := "" // the subcommand as given, for --help
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch name := args[0]; {
		case name == "help": // `emostream help` or `emostream help SUBCOMMAND`
			if len(args) > 1 && isSubcommand(args[1]) {
				return nil, helpRequest{cmd: args[1]}
			}
			return nil, helpRequest{}
		case isSubcommand(name):
			c.command, args = name, args[1:]
			explicit = name
		default:
			return nil, fmt.Errorf("unknown subcommand %q (want run, api, aggregate, dashboard, load or broker)", name)
		}
	}

	fs := flagSet(c, io.Discard)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				if secretFlags[f.Name] {
					v = "<redacted>"
				}
				envErr = fmt.Errorf("%s=%q: %v", name, v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, helpRequest{cmd: explicit}
		}
		return nil, flagError(err)
	}
	fs.Visit(func(f *flag.Flag) { c.httpSet = c.httpSet || f.Name == "http" })
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.validate()
}

// flagSet defines every flag on c.
func flagSet(c *config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("emostream", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Func("brokers", "bootstrap `list` of a real Kafka cluster (host:port,...); empty in run means start the embedded broker", func(s string) error {
		c.brokers = nil
		for _, b := range strings.Split(s, ",") {
			if b = strings.TrimSpace(b); b != "" {
				if _, _, err := net.SplitHostPort(b); err != nil {
					return fmt.Errorf("broker %q is not host:port", b)
				}
				c.brokers = append(c.brokers, b)
			}
		}
		return nil
	})
	fs.StringVar(&c.brokerListen, "broker-listen", "127.0.0.1:9092", "`address` the embedded broker listens on")
	fs.StringVar(&c.dataDir, "data-dir", "", "`directory` for the embedded broker's log and local state (empty: memory)")
	fs.StringVar(&c.http, "http", "127.0.0.1:8080", "listen `address` of the HTTP server")
	fs.StringVar(&c.inputTopic, "input-topic", "topic1", "input `topic` (emojis)")
	fs.StringVar(&c.outputTopic, "output-topic", "topic2", "output `topic` (window results)")
	fs.StringVar(&c.dlqTopic, "dlq-topic", "topic1.dlq", "dead-letter `topic` for late and malformed records")
	fs.Func("partitions", "`number` of partitions for topics the app creates (default 4)", func(s string) error {
		var n int64
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 || n > math.MaxInt32 {
			return errors.New("must be a positive integer")
		}
		c.partitions = int32(n)
		return nil
	})
	c.partitions = 4
	fs.DurationVar(&c.window, "window", 2*time.Second, "tumbling window `size`")
	fs.DurationVar(&c.grace, "grace", 500*time.Millisecond, "how long after a window's end late records still count")
	fs.Int64Var(&c.scale, "scale", 1000, "bursts = ceil(count / `scale`)")
	fs.DurationVar(&c.retention, "retention", 10*time.Minute, "embedded broker: how long topic1, topic2 and the DLQ keep records (0: forever); a real cluster's topics keep their own settings")
	fs.BoolVar(&c.exactlyOnce, "exactly-once", false, "aggregator: write results, state and offsets in Kafka transactions (read_committed); see docs/reliability.md")
	fs.StringVar(&c.instanceID, "instance-id", "", "aggregator: static group membership `id` (Kafka's group.instance.id), unique per aggregator process; a restart with the same id within --session-timeout gets its partitions back without a rebalance, but a stopped one's partitions wait for --session-timeout (empty: dynamic membership)")
	fs.DurationVar(&c.sessionTimeout, "session-timeout", stream.DefaultSessionTimeout, "aggregator: how long Kafka waits for a silent aggregator before moving its partitions to the others (the broker's group.min.session.timeout.ms, 6s by default, is the lowest it accepts)")
	fs.DurationVar(&c.heartbeatInterval, "heartbeat-interval", stream.DefaultHeartbeatInterval, "aggregator: how often it heartbeats to the group coordinator; below --session-timeout")
	fs.StringVar(&c.rebalancing, "rebalancing", "cooperative", "aggregator: the consumer group's rebalance protocol, `cooperative` (only the partitions that move are handed over; the others keep running) or eager (every aggregator hands over all its partitions at each rebalance); --exactly-once always rebalances eagerly, see docs/operations.md#rebalancing")
	fs.IntVar(&c.standbyReplicas, "standby-replicas", 1, "aggregator: how many other aggregators keep a warm copy of each partition's window state by following its changelog, so a failover restores only the changelog's tail (Kafka Streams' num.standby.replicas; 0: none)")
	aggregationsFlag(fs, c)
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "lowest `level` logged: debug, info, warn or error; debug adds the Kafka clients' own log lines (sarama's, franz-go's)")
	fs.IntVar(&c.loadClients, "load-clients", 0, "simulated clients started by run")
	fs.IntVar(&c.maxViewers, "max-viewers", dashboard.DefaultMaxViewers, "dashboard: most concurrent /events streams; more are answered 503 with Retry-After and the page retries")
	fs.StringVar(&c.target, "target", "http://127.0.0.1:8080", "load: `URL` of the ingest API")
	fs.IntVar(&c.clients, "clients", 10, "load: concurrent clients")
	fs.Float64Var(&c.rate, "rate", 1000, "load (and run's simulated clients): emojis per second in total; 0 for as fast as possible")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "load: how long to run; 0 until Ctrl-C")
	fs.IntVar(&c.batch, "batch", 1, "load: emojis per request (1 to 1000)")
	fs.BoolVar(&c.kafkaTLS, "kafka-tls", false, "connect to Kafka (--brokers) over TLS")
	fs.StringVar(&c.kafkaTLSCA, "kafka-tls-ca", "", "PEM `file` with the CA certificates that sign the brokers' certificates (default: the system's roots)")
	fs.StringVar(&c.kafkaTLSCert, "kafka-tls-cert", "", "PEM `file` with a client certificate, for brokers that require one (with --kafka-tls-key)")
	fs.StringVar(&c.kafkaTLSKey, "kafka-tls-key", "", "PEM `file` with the client certificate's private key")
	fs.BoolVar(&c.kafkaTLSInsecure, "kafka-tls-insecure-skip-verify", false, "accept any broker certificate (tests only: the traffic can then be read by anyone in the path)")
	fs.StringVar(&c.saslMechanism, "kafka-sasl-mechanism", "", "SASL `mechanism` to log in to Kafka: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)")
	fs.StringVar(&c.saslUser, "kafka-sasl-user", "", "SASL `user` name")
	fs.StringVar(&c.saslPassword, "kafka-sasl-password", "", "SASL `password`; prefer "+EnvPrefix+"KAFKA_SASL_PASSWORD, since other users of the machine can see command lines")
	return fs
}

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func (c *config) validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	for _, a := range []struct{ flag, addr string }{{"--broker-listen", c.brokerListen}, {"--http", c.http}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			bad("%s %q is not host:port", a.flag, a.addr)
		}
	}
	topics := map[string]string{}
	for _, tp := range []struct{ flag, name string }{{"--input-topic", c.inputTopic}, {"--output-topic", c.outputTopic}, {"--dlq-topic", c.dlqTopic}} {
		switch {
		case !topicName.MatchString(tp.name) || tp.name == "." || tp.name == "..":
			bad("%s %q is not a valid Kafka topic name", tp.flag, tp.name)
		case topics[tp.name] != "":
			bad("%s and %s are both %q", topics[tp.name], tp.flag, tp.name)
		default:
			topics[tp.name] = tp.flag
		}
	}
	if c.window < time.Millisecond {
		bad("--window must be at least 1ms, got %v", c.window)
	} else if c.window%time.Millisecond != 0 {
		bad("--window must be a whole number of milliseconds, got %v", c.window)
	}
	if c.retention != 0 && c.retention < time.Minute {
		bad("--retention must be 0 (forever) or at least 1m, got %v", c.retention)
	}
	c.validateMembership(bad)
	if c.grace < 0 {
		bad("--grace must not be negative, got %v", c.grace)
	}
	if c.scale < 1 {
		bad("--scale must be at least 1, got %d", c.scale)
	}
	if c.loadClients < 0 {
		bad("--load-clients must not be negative, got %d", c.loadClients)
	}
	if c.maxViewers < 1 {
		bad("--max-viewers must be at least 1, got %d", c.maxViewers)
	}
	if c.clients < 1 {
		bad("--clients must be at least 1, got %d", c.clients)
	}
	if c.rate < 0 || math.IsNaN(c.rate) || math.IsInf(c.rate, 0) {
		bad("--rate must be a non-negative number, got %v", c.rate)
	}
	if c.duration < 0 {
		bad("--duration must not be negative, got %v", c.duration)
	}
	if c.batch < 1 || c.batch > 1000 {
		bad("--batch must be 1 to 1000, got %d", c.batch)
	}
	c.validateSecurity(bad)
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return c.loadSecurity()
}

// validateMembership checks --instance-id, --session-timeout,
// --heartbeat-interval, --standby-replicas and --rebalancing.
func (c *config) validateMembership(bad func(string, ...any)) {
	if c.instanceID != "" && (!topicName.MatchString(c.instanceID) || c.instanceID == "." || c.instanceID == "..") {
		bad("--instance-id %q: want 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-'", c.instanceID)
	}
	if c.sessionTimeout < time.Millisecond || c.sessionTimeout%time.Millisecond != 0 {
		bad("--session-timeout must be a positive whole number of milliseconds, got %v", c.sessionTimeout)
	}
	if c.heartbeatInterval < time.Millisecond || c.heartbeatInterval%time.Millisecond != 0 {
		bad("--heartbeat-interval must be a positive whole number of milliseconds, got %v", c.heartbeatInterval)
	} else if c.heartbeatInterval >= c.sessionTimeout {
		bad("--heartbeat-interval (%v) must be below --session-timeout (%v)", c.heartbeatInterval, c.sessionTimeout)
	}
	if c.standbyReplicas < 0 {
		bad("--standby-replicas must not be negative, got %d", c.standbyReplicas)
	}
	switch c.rebalancing {
	case "eager", "cooperative":
	default:
		bad("--rebalancing must be eager or cooperative, got %q", c.rebalancing)
	}
}

// validateSecurity checks the --kafka-tls* and --kafka-sasl-* flags. No
// message contains the password.
func (c *config) validateSecurity(bad func(string, ...any)) {
	if !c.kafkaTLS {
		for _, f := range []struct {
			flag string
			set  bool
		}{{"--kafka-tls-ca", c.kafkaTLSCA != ""}, {"--kafka-tls-cert", c.kafkaTLSCert != ""}, {"--kafka-tls-key", c.kafkaTLSKey != ""},
			{"--kafka-tls-insecure-skip-verify", c.kafkaTLSInsecure}} {
			if f.set {
				bad("%s needs --kafka-tls", f.flag)
			}
		}
	}
	if c.kafkaTLSCert != "" && c.kafkaTLSKey == "" {
		bad("--kafka-tls-cert needs --kafka-tls-key")
	}
	if c.kafkaTLSKey != "" && c.kafkaTLSCert == "" {
		bad("--kafka-tls-key needs --kafka-tls-cert")
	}
	switch mech := strings.ToUpper(c.saslMechanism); mech {
	case "":
		if c.saslUser != "" {
			bad("--kafka-sasl-user needs --kafka-sasl-mechanism")
		}
		if c.saslPassword != "" {
			bad("--kafka-sasl-password needs --kafka-sasl-mechanism")
		}
	case stream.SASLPlain, stream.SASLScramSHA256, stream.SASLScramSHA512:
		if c.saslUser == "" {
			bad("--kafka-sasl-mechanism %s needs --kafka-sasl-user", mech)
		}
		if c.saslPassword == "" {
			bad("--kafka-sasl-mechanism %s needs a password (%sKAFKA_SASL_PASSWORD or --kafka-sasl-password)", mech, EnvPrefix)
		}
	default:
		bad("--kafka-sasl-mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", c.saslMechanism)
	}
	if c.securityEnabled() && (c.command == "broker" || (c.command == "run" && len(c.brokers) == 0)) {
		bad("--kafka-tls and --kafka-sasl-* apply to the cluster given with --brokers; the embedded broker (%s without --brokers) has neither", c.command)
	}
}

func (c *config) securityEnabled() bool { return c.kafkaTLS || c.saslMechanism != "" }

// loadSecurity reads the TLS files and builds c.security; the flags are
// already valid.
func (c *config) loadSecurity() error {
	c.security = stream.Security{SASL: stream.SASL{Mechanism: strings.ToUpper(c.saslMechanism), User: c.saslUser, Password: c.saslPassword}}
	if c.kafkaTLS {
		tc, err := stream.TLSFiles{CAFile: c.kafkaTLSCA, CertFile: c.kafkaTLSCert, KeyFile: c.kafkaTLSKey,
			InsecureSkipVerify: c.kafkaTLSInsecure}.Config()
		if err != nil {
			return errors.New(strings.TrimPrefix(err.Error(), "stream: "))
		}
		c.security.TLS = tc
	}
	return c.security.Validate()
}

// configureSarama applies the Kafka security flags to a client's
// configuration.
func (c *config) configureSarama(sc *sarama.Config) {
	_ = c.security.Apply(sc) // validated by parse
}

// kafkaBrokers is where the parts that only talk to Kafka connect: the
// --brokers list, or else the embedded broker that `emostream broker`
// starts on --broker-listen.
func (c *config) kafkaBrokers() []string {
	if len(c.brokers) > 0 {
		return c.brokers
	}
	return []string{c.brokerListen}
}
