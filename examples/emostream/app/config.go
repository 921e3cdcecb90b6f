package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"
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
	exactlyOnce  bool

	target   string
	clients  int
	rate     float64
	duration time.Duration
	batch    int
}

// errHelp is returned by parse for -h; Main prints usage and exits 0.
var errHelp = flag.ErrHelp

// parse reads the subcommand, the environment and the flags.
func parse(args []string, getenv func(string) string) (*config, error) {
	c := &config{command: "run"}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch name := args[0]; {
		case name == "help":
			return nil, errHelp
		case slices.ContainsFunc(subcommands, func(s struct{ name, what string }) bool { return s.name == name }):
			c.command, args = name, args[1:]
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
				envErr = fmt.Errorf("%s=%q: %v", name, v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
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
	fs.Func("partitions", "partitions for topics the app creates (default 4)", func(s string) error {
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
	fs.BoolVar(&c.exactlyOnce, "exactly-once", false, "aggregator: write results, state and offsets in Kafka transactions (read_committed); see docs/reliability.md")
	fs.IntVar(&c.loadClients, "load-clients", 0, "simulated clients started by run")
	fs.StringVar(&c.target, "target", "http://127.0.0.1:8080", "load: `URL` of the ingest API")
	fs.IntVar(&c.clients, "clients", 10, "load: concurrent clients")
	fs.Float64Var(&c.rate, "rate", 1000, "load (and run's simulated clients): emojis per second in total; 0 for as fast as possible")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "load: how long to run; 0 until Ctrl-C")
	fs.IntVar(&c.batch, "batch", 1, "load: emojis per request (1 to 1000)")
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
	if c.grace < 0 {
		bad("--grace must not be negative, got %v", c.grace)
	}
	if c.scale < 1 {
		bad("--scale must be at least 1, got %d", c.scale)
	}
	if c.loadClients < 0 {
		bad("--load-clients must not be negative, got %d", c.loadClients)
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
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
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

func usage(w io.Writer) {
	fmt.Fprintf(w, "EmoStream: real-time emoji aggregation on Kafka.\n\nUsage: emostream [SUBCOMMAND] [FLAGS]\n\nSubcommands:\n")
	for _, s := range subcommands {
		fmt.Fprintf(w, "  %-10s %s\n", s.name, s.what)
	}
	fmt.Fprintf(w, "\nFlags (each also from %s<FLAG>, e.g. EMOSTREAM_BROKERS, EMOSTREAM_DATA_DIR):\n", EnvPrefix)
	flagSet(&config{}, w).PrintDefaults()
}
