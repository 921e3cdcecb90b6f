package app

import (
	"context"
	"flag"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream/embedded"
)

// mainOut runs Main in process and returns its exit code, stdout and
// stderr.
func mainOut(t *testing.T, o Options) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	o.Stdout, o.Stderr = &stdout, &stderr
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	code := Main(ctx, o)
	return code, stdout.String(), stderr.String()
}

// flagLines are the flag names a usage text lists, from its "  --name"
// lines.
func flagLines(t *testing.T, out string) []string {
	t.Helper()
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z][a-z0-9-]*)( |$)`).FindAllStringSubmatch(out, -1) {
		names = append(names, m[1])
	}
	require.NotRegexp(t, `(?m)^\s+-[a-z]`, out, "a flag printed with a single dash")
	return names
}

func allFlags() []string {
	var names []string
	flagSet(&config{}, io.Discard).VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// TestSubcommandHelp: `emostream SUBCOMMAND --help` (and -h, and `emostream
// help SUBCOMMAND`) exits 0 and lists exactly that subcommand's flags, as
// --name.
func TestSubcommandHelp(t *testing.T) {
	for _, sc := range subcommands {
		for _, args := range [][]string{{sc.name, "--help"}, {sc.name, "-h"}, {"help", sc.name}, {sc.name, "--partitions", "3", "--help"}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				code, stdout, stderr := mainOut(t, Options{Args: args})
				require.Equal(t, 0, code, "stderr: %s", stderr)
				assert.Empty(t, stderr)
				assert.True(t, strings.HasPrefix(stdout, "emostream "+sc.name+": "+sc.what), "first line: %q", stdout)
				assert.Contains(t, stdout, "Usage: emostream "+sc.name+" [FLAGS]")
				got := flagLines(t, stdout)
				want := slices.Clone(flagScope[sc.name])
				slices.Sort(want)
				want = slices.Compact(want)
				assert.Equal(t, want, got)
			})
		}
	}
	// Flags of other subcommands stay out.
	_, stdout, _ := mainOut(t, Options{Args: []string{"load", "--help"}})
	assert.NotContains(t, stdout, "--broker-listen")
	assert.Contains(t, stdout, "--target URL")
	assert.Contains(t, stdout, "EMOSTREAM_TARGET")
	_, stdout, _ = mainOut(t, Options{Args: []string{"api", "--help"}})
	assert.NotContains(t, stdout, "--window")
	assert.Contains(t, stdout, "  --http address\n")
	assert.Contains(t, stdout, `(default "127.0.0.1:8080")`)
}

// TestTopLevelHelp: -h, --help and `help` list every subcommand and every
// flag as --name.
func TestTopLevelHelp(t *testing.T) {
	want := allFlags()
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		code, stdout, stderr := mainOut(t, Options{Args: args})
		require.Equal(t, 0, code, "stderr: %s", stderr)
		for _, sc := range subcommands {
			assert.Contains(t, stdout, "  "+sc.name+" ")
		}
		assert.Contains(t, stdout, "emostream SUBCOMMAND --help")
		assert.Equal(t, want, flagLines(t, stdout), "args %v", args)
		assert.Contains(t, stdout, "  --window size\n    \ttumbling window size (default 2s)\n")
		assert.Contains(t, stdout, "  --exactly-once\n")
		assert.Contains(t, stdout, "  --partitions number\n")
	}
}

// TestEveryFlagHasAScope keeps flagScope in step with flagSet: a new flag
// must say which subcommands read it.
func TestEveryFlagHasAScope(t *testing.T) {
	flags := allFlags()
	scoped := map[string]bool{}
	for cmd, names := range flagScope {
		require.True(t, isSubcommand(cmd), "flagScope has unknown subcommand %q", cmd)
		for _, n := range names {
			require.Contains(t, flags, n, "flagScope[%q] names a flag that does not exist", cmd)
			scoped[n] = true
		}
	}
	for _, sc := range subcommands {
		require.Contains(t, flagScope, sc.name, "subcommand %q has no flagScope entry", sc.name)
	}
	for _, f := range flags {
		assert.True(t, scoped[f], "flag --%s is in no subcommand's flagScope (usage.go)", f)
	}
}

// TestFlagErrorsNameDoubleDashFlags: the flag package's errors read --name,
// like the docs.
func TestFlagErrorsNameDoubleDashFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nope"}, "emostream: flag provided but not defined: --nope (see emostream --help)"},
		{[]string{"api", "-nope"}, "emostream: flag provided but not defined: --nope (see emostream api --help)"},
		{[]string{"run", "--window"}, "emostream: flag needs an argument: --window (see emostream run --help)"},
		{[]string{"run", "--window", "x"}, `emostream: invalid value "x" for flag --window: parse error (see emostream run --help)`},
		{[]string{"serve"}, `emostream: unknown subcommand "serve" (want run, api, aggregate, dashboard, load or broker) (see emostream --help)`},
		{[]string{"--exactly-once=maybe"}, `emostream: invalid boolean value "maybe" for --exactly-once: parse error (see emostream --help)`},
		{[]string{"--partitions", "-3"}, `emostream: invalid value "-3" for flag --partitions: must be a positive integer (see emostream --help)`},
	} {
		code, stdout, stderr := mainOut(t, Options{Args: tc.args})
		assert.Equal(t, 2, code, "%v", tc.args)
		assert.Empty(t, stdout)
		assert.Equal(t, tc.want+"\n", stderr, "%v", tc.args)
	}
}

// busyAddr holds a loopback port for the test and returns its address.
func busyAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().String()
}

// TestBusyPortNamesTheFlag: a listen address in use ends the subcommand with
// one line that names the address and the flag to change.
func TestBusyPortNamesTheFlag(t *testing.T) {
	b, err := embedded.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	kafka := b.Addrs()[0]
	agg := func(ctx context.Context, _ AggregatorConfig) error { <-ctx.Done(); return nil }

	busy := busyAddr(t)
	for _, tc := range []struct {
		name string
		args []string
		flag string
	}{
		{"broker --broker-listen", []string{"broker", "--broker-listen", busy}, "--broker-listen"},
		{"run --broker-listen", []string{"run", "--broker-listen", busy, "--http", "127.0.0.1:0"}, "--broker-listen"},
		{"run --http", []string{"run", "--broker-listen", "127.0.0.1:0", "--http", busy}, "--http"},
		{"api --http", []string{"api", "--brokers", kafka, "--http", busy}, "--http"},
		{"dashboard --http", []string{"dashboard", "--brokers", kafka, "--http", busy}, "--http"},
		{"aggregate --http", []string{"aggregate", "--brokers", kafka, "--http", busy}, "--http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := mainOut(t, Options{Args: tc.args, Aggregator: agg})
			require.Equal(t, 1, code, "stderr: %s", stderr)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			cmd := tc.args[0]
			assert.Equal(t, "emostream "+cmd+": address "+busy+" in use; pick another with "+tc.flag, lines[len(lines)-1])
		})
	}
}

// TestListenErrorOtherReasons: a listen failure other than "in use" still
// names the flag, with the reason.
func TestListenErrorOtherReasons(t *testing.T) {
	_, err := net.Listen("tcp", "192.0.2.1:0") // TEST-NET-1: not an address of this machine
	require.Error(t, err)
	got := listenError(err, "--http", "192.0.2.1:0")
	require.ErrorContains(t, got, "cannot listen on 192.0.2.1:0 (")
	require.ErrorContains(t, got, "); pick another with --http")
	// Not a listen error: unchanged.
	other := io.ErrUnexpectedEOF
	require.Equal(t, other, listenError(other, "--http", "x"))
	require.NoError(t, listenError(nil, "--http", "x"))
}
