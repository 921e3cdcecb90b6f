package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"syscall"
)

// helpRequest is parse's answer to -h, --help and `help [SUBCOMMAND]`:
// Main prints the usage of cmd ("" for the top-level usage) and exits 0.
// It matches [flag.ErrHelp] with errors.Is.
type helpRequest struct{ cmd string }

func (h helpRequest) Error() string        { return "help requested" }
func (h helpRequest) Is(target error) bool { return target == flag.ErrHelp }

// isSubcommand reports whether name is one of the subcommands.
func isSubcommand(name string) bool {
	return slices.ContainsFunc(subcommands, func(s struct{ name, what string }) bool { return s.name == name })
}

// Kafka connection flags, used by every subcommand that talks to Kafka.
var kafkaFlags = []string{"brokers", "broker-listen", "kafka-tls", "kafka-tls-ca", "kafka-tls-cert", "kafka-tls-key",
	"kafka-tls-insecure-skip-verify", "kafka-sasl-mechanism", "kafka-sasl-user", "kafka-sasl-password"}

// aggregatorFlags are the aggregator's own flags (in `run` and `aggregate`).
var aggregatorFlags = []string{"input-topic", "output-topic", "dlq-topic", "partitions", "window", "grace", "scale",
	"retention", "data-dir", "exactly-once", "instance-id", "session-timeout", "heartbeat-interval", "standby-replicas", "rebalancing", "aggregations", "users-topic"}

// flagScope lists, per subcommand, the flags it reads; `emostream
// SUBCOMMAND --help` prints those. Every subcommand accepts every flag (an
// EMOSTREAM_ variable may be set for all of them), but the others have no
// effect on it. A flag missing here is shown for every subcommand
// (TestEveryFlagHasAScope keeps the list complete).
var flagScope = map[string][]string{
	"run":       concat(kafkaFlags, aggregatorFlags, []string{"http", "max-viewers", "load-clients", "rate", "batch", "log-level"}),
	"api":       concat(kafkaFlags, []string{"http", "input-topic", "partitions", "log-level"}),
	"aggregate": concat(kafkaFlags, aggregatorFlags, []string{"http", "log-level"}),
	"dashboard": concat(kafkaFlags, []string{"http", "output-topic", "partitions", "window", "grace", "scale",
		"max-viewers", "aggregations", "log-level"}),
	"load": {"target", "clients", "rate", "duration", "batch", "log-level"},
	"broker": {"broker-listen", "data-dir", "partitions", "retention", "input-topic", "output-topic", "dlq-topic",
		"aggregations", "users-topic", "log-level"},
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// inScope reports whether subcommand cmd reads flag name; every flag is in
// scope of the top-level help (cmd "").
func inScope(cmd, name string) bool {
	if cmd == "" {
		return true
	}
	if !isSubcommand(cmd) {
		return true
	}
	for _, names := range flagScope {
		if slices.Contains(names, name) {
			return slices.Contains(flagScope[cmd], name)
		}
	}
	return true // not in the table: shown everywhere
}

// usage prints the help of subcommand cmd, or the top-level help (every
// subcommand and every flag) when cmd is "".
func usage(w io.Writer, cmd string) {
	if cmd == "" {
		fmt.Fprintf(w, "EmoStream: real-time emoji aggregation on Kafka.\n\nUsage: emostream [SUBCOMMAND] [FLAGS]\n\nSubcommands:\n")
		for _, s := range subcommands {
			fmt.Fprintf(w, "  %-10s %s\n", s.name, s.what)
		}
		fmt.Fprintf(w, "\n`emostream SUBCOMMAND --help` lists the flags of one subcommand.\n")
		fmt.Fprintf(w, "\nFlags (each also from %s<FLAG>, e.g. EMOSTREAM_BROKERS, EMOSTREAM_DATA_DIR):\n", EnvPrefix)
	} else {
		what := ""
		for _, s := range subcommands {
			if s.name == cmd {
				what = s.what
			}
		}
		fmt.Fprintf(w, "emostream %s: %s.\n\nUsage: emostream %s [FLAGS]\n", cmd, what, cmd)
		fmt.Fprintf(w, "\nFlags (each also from %s<FLAG>, e.g. %s):\n", EnvPrefix, envName(flagScope[cmd][0]))
	}
	printFlags(w, flagSet(&config{}, io.Discard), func(name string) bool { return inScope(cmd, name) })
}

// helpHint is the help command to suggest after a usage error in args:
// the subcommand's own when one was given.
func helpHint(args []string) string {
	if len(args) > 0 && isSubcommand(args[0]) {
		return "emostream " + args[0] + " --help"
	}
	return "emostream --help"
}

// envName is the environment variable of flag name.
func envName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// printFlags prints the flags of fs that keep accepts, sorted by name, as
// `--name value` (the way the docs write them; the flag package's own
// PrintDefaults writes `-name`), each with its usage and default.
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(string) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if !keep(f.Name) {
			return
		}
		arg, text := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		fmt.Fprintln(w, line)
		text = strings.ReplaceAll(text, "\n", "\n    \t")
		if def := defaultText(f); def != "" {
			text += " (default " + def + ")"
		}
		fmt.Fprintf(w, "    \t%s\n", text)
	})
}

// defaultText is how usage shows f's default: nothing for a zero value,
// strings quoted.
func defaultText(f *flag.Flag) string {
	switch f.DefValue {
	case "", "0", "0s", "false":
		return ""
	}
	if fmt.Sprintf("%T", f.Value) == "*flag.stringValue" {
		return fmt.Sprintf("%q", f.DefValue)
	}
	return f.DefValue
}

// singleDash matches the `-name` the flag package writes in its errors
// ("flag provided but not defined: -x", "invalid value ... for flag -x: ...",
// "flag needs an argument: -x").
var singleDash = regexp.MustCompile(`(^|[\s:])-([a-zA-Z][a-zA-Z0-9-]*)`)

// flagError rewrites a flag package error to name flags as `--name`.
func flagError(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return errors.New(singleDash.ReplaceAllString(err.Error(), "$1--$2"))
}

// listenError turns a failure to listen on addr, the value of flag, into
// an error that names the flag to change: "address 127.0.0.1:9092 in use;
// pick another with --broker-listen". Other errors pass unchanged.
func listenError(err error, flag, addr string) error {
	var op *net.OpError
	if err == nil || !errors.As(err, &op) || op.Op != "listen" {
		return err
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("address %s in use; pick another with %s", addr, flag)
	}
	return fmt.Errorf("cannot listen on %s (%v); pick another with %s", addr, op.Err, flag)
}
