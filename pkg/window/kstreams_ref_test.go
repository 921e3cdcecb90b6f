package window_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
	"github.com/emostream/emostream/pkg/window"
)

// TestMatchesKafkaStreams checks the promise of WallClockClose(false): stream
// time alone decides, exactly as in Kafka Streams, so the results must match
// Kafka Streams' record for record. It runs random out-of-order input (one
// partition, no redelivery, the wall clock never advanced) through our
// windowed count and through the real Kafka Streams (the harness in
// testdata/kstreams-ref, run under TopologyTestDriver), and compares the
// results forwarded after every input record, in order.
//
// Late records go to a dead-letter topic here and are dropped by Kafka
// Streams; only the result topic is compared.
//
// The one deliberate difference: when sessions merge, Kafka Streams forwards a
// tombstone (null value) for every session the merged one replaces (and for
// the session itself when a record lands inside it without moving its
// bounds); ours forwards only the merged session (see AggregateSessions). The
// null lines are removed from Kafka's output before comparing.
//
// Sliding windows with emit-final are compared with Kafka Streams'
// emitStrategy(onWindowClose), not suppress(untilWindowCloses), which emits a
// sliding window one millisecond of stream time before it closes (and again
// after each later update); Kafka's window store gets our retention (see
// slidingRetention).
//
// A mismatching case is shrunk to a minimal failing record sequence, printed
// with both outputs step by step. The harness can also be run by hand:
//
//	cd pkg/window/testdata/kstreams-ref && mvn -q package
//	java -cp target/kstreams-ref-1.0.0.jar:$(cat target/classpath.txt) kstreamsref.Main < case.txt
//
// It needs java and mvn (and Maven Central, the first time); without them the
// test is skipped, except under CI=true where it fails.
func TestMatchesKafkaStreams(t *testing.T) {
	ref := startKafkaRef(t)
	cases := append(handRefCases(), genRefCases()...)
	minimized := map[string]bool{}
	deadline := time.Now().Add(90 * time.Second) // shrinking budget
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := ref.run(t, c)
			got := runOursForRef(t, c)
			step := firstRefDiff(got, want)
			if step < 0 {
				return
			}
			// Shrink the first random failure of each window kind and emit
			// strategy (the hand-written cases are small already).
			group := c.kind + "/" + c.emit
			if !strings.HasPrefix(c.name, "hand/") && !minimized[group] && time.Now().Before(deadline) {
				minimized[group] = true
				start := time.Now()
				small := minimizeRefCase(t, ref, c, step, deadline)
				t.Logf("shrunk %d records to %d in %v", len(c.recs), len(small.recs), time.Since(start).Round(time.Millisecond))
				c = small
				want, got = ref.run(t, c), runOursForRef(t, c)
				step = firstRefDiff(got, want)
			}
			t.Errorf("results differ from Kafka Streams 4.4.0 at record %d (pipe %s %d)\n%s",
				step, c.recs[step].key, c.recs[step].ts, describeRefCase(c, want, got, step))
		})
	}
}

type refRecord struct {
	key string
	ts  int64
}

type refCase struct {
	name                            string
	kind                            string // tumbling, hopping, session or sliding
	size, advance, gap, diff, grace int64  // ms
	emit                            string // update or final
	recs                            []refRecord
}

func (c refCase) config() string {
	switch c.kind {
	case "session":
		return fmt.Sprintf("config kind=%s gap=%d grace=%d emit=%s", c.kind, c.gap, c.grace, c.emit)
	case "sliding":
		// Kafka's window store keeps what ours does (see slidingRetention).
		return fmt.Sprintf("config kind=%s diff=%d retention=%d grace=%d emit=%s", c.kind, c.diff, slidingRetention(c), c.grace, c.emit)
	}
	return fmt.Sprintf("config kind=%s size=%d advance=%d grace=%d emit=%s", c.kind, c.size, c.advance, c.grace, c.emit)
}

// slidingRetention is our default retention for the case's sliding windows
// (2 * diff + grace + 5 min), given to Kafka Streams' window store too: with
// its own default (2 * diff + grace) Kafka Streams 4.4.0 hides windows from
// fetches after a jump of stream time, and emitStrategy(onWindowClose) never
// emits them (see the harness).
func slidingRetention(c refCase) int64 { return 2*c.diff + c.grace + 5*60*1000 }

// script is the case in the harness's input format, a mark after every record.
func (c refCase) script() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "case %s\n%s\n", c.name, c.config())
	for _, r := range c.recs {
		fmt.Fprintf(&sb, "pipe %s %d\nmark\n", r.key, r.ts)
	}
	sb.WriteString("end\n")
	return sb.String()
}

// handRefCases are small cases for boundaries found to matter: windows near
// the epoch, the instant a session closes, and sliding windows' early
// records, equal timestamps and partly closed records.
func handRefCases() []refCase {
	recs := func(kts ...any) []refRecord {
		var out []refRecord
		for i := 0; i < len(kts); i += 2 {
			out = append(out, refRecord{kts[i].(string), int64(kts[i+1].(int))})
		}
		return out
	}
	tumble := refCase{kind: "tumbling", size: 2000, advance: 2000}
	hop := refCase{kind: "hopping", size: 3000, advance: 1000}
	sess := refCase{kind: "session", gap: 800}
	slide := refCase{kind: "sliding", diff: 1000}
	var cases []refCase
	for _, emit := range []string{"update", "final"} {
		for _, c := range []refCase{
			// Final results of windows with the same end come in key order,
			// "a" before "ab".
			{name: "tumbling-key-order", recs: recs("ab", 1380, "a", 1171, "b", 2143)},
			// A record near time 0: Kafka Streams has no windows before the epoch.
			{name: "hopping-near-epoch", recs: recs("a", 500, "a", 2500, "b", 6000)},
			// b moves stream time to 1000: session a@[0,0] closes (0 < 1000-800);
			// a at 700 is within the gap of that closed session.
			{name: "session-after-close", recs: recs("a", 0, "b", 1000, "a", 700, "b", 3000)},
			// a at 800 moves stream time to 800, where a@[0,0] closes: the
			// record still joins it, as it is within the gap.
			{name: "session-closing-record", recs: recs("a", 0, "a", 800, "b", 3000)},
			// Stream time exactly end + gap + grace of session a@[0,0].
			{name: "session-at-close", recs: recs("a", 0, "b", 800, "a", 800, "b", 3000)},
			// A new session ending exactly at stream time - gap - grace.
			{name: "session-new-at-close", recs: recs("b", 800, "a", 0, "b", 3000)},
			// Records before the time difference share [0, 1000]; 1000 is the
			// first with a left window of its own, which is that window.
			{name: "sliding-early", recs: recs("a", 100, "a", 500, "a", 300, "a", 1000, "a", 1200, "a", 900, "a", 0, "a", 2500)},
			// Equal timestamps, and a record between two others.
			{name: "sliding-same-time", recs: recs("a", 5000, "a", 5000, "a", 4500, "a", 5500, "a", 5500, "a", 7000)},
			// Stream time 6000: a window ending at 6000 still takes records,
			// so a at 5000 (windows up to [5000, 6000]) is on time, though no
			// window of it is open, and a at 4999 is late; 5200 falls in the
			// right window of 5000, which was never stored.
			{name: "sliding-late-boundary", recs: recs("a", 4500, "b", 6000, "a", 5000, "a", 4999, "a", 5200, "b", 8000)},
			// Out of order with some of the record's windows closed: a at
			// 2900 and 2400 land in closed windows and open ones.
			{name: "sliding-partly-closed", recs: recs("a", 2000, "a", 2500, "b", 3200, "a", 2900, "a", 2400, "b", 5000)},
			// Stream time jumps far ahead: every open window closes at once.
			{name: "sliding-jump", recs: recs("a", 5000, "a", 5000, "a", 5600, "b", 20000, "b", 25000)},
		} {
			shape := sess
			switch {
			case strings.HasPrefix(c.name, "sliding"):
				shape = slide
			case strings.HasPrefix(c.name, "hopping"):
				shape = hop
			case strings.HasPrefix(c.name, "tumbling"):
				shape = tumble
			}
			shape.name, shape.emit, shape.recs = "hand/"+c.name+"/emit="+emit, emit, c.recs
			cases = append(cases, shape)
		}
	}
	return cases
}

// genRefCases: tumbling, hopping, session and sliding windows (time
// difference 1000 and 300) × grace {0, 700} × emit {update, final} × 5 seeds. Seeds 1 and 3 start at time 0 (windows near the
// epoch), the others near 1 000 000; seeds 3 and 4 put timestamps on a 100 ms
// grid, so records often fall exactly on window ends and close boundaries.
func genRefCases() []refCase {
	shapes := []refCase{
		{kind: "tumbling", size: 2000, advance: 2000},
		{kind: "hopping", size: 3000, advance: 1000},
		{kind: "session", gap: 800},
		{kind: "sliding", diff: 1000},
		{kind: "sliding", diff: 300},
	}
	// Some keys are prefixes of others: results are ordered by key bytes.
	keys := []string{"a", "ab", "abc", "b", "ba"}
	var cases []refCase
	for si, shape := range shapes {
		for _, grace := range []int64{0, 700} {
			for _, emit := range []string{"update", "final"} {
				for seed := uint64(1); seed <= 5; seed++ {
					c := shape
					c.grace, c.emit = grace, emit
					c.name = fmt.Sprintf("%s/grace=%d/emit=%s/seed=%d", c.kind, grace, emit, seed)
					if c.kind == "sliding" {
						c.name = fmt.Sprintf("%s/diff=%d/grace=%d/emit=%s/seed=%d", c.kind, c.diff, grace, emit, seed)
					}
					rng := rand.New(rand.NewPCG(seed, uint64(si)<<8|uint64(grace)<<1|boolBit(emit == "final")))
					var base, grid int64 = 0, 1
					if seed%2 == 0 || seed == 5 {
						base = 1_000_000 + rng.Int64N(10_000)
					}
					if seed == 3 || seed == 4 {
						grid = 100
					}
					for range 100 + rng.IntN(201) {
						base += rng.Int64N(300)
						lag := rng.Int64N(1000) // out of order
						if rng.IntN(5) == 0 {
							lag = rng.Int64N(4000) // often late
						}
						ts := max(0, (base-lag)/grid*grid)
						c.recs = append(c.recs, refRecord{keys[rng.IntN(len(keys))], ts})
					}
					cases = append(cases, c)
				}
			}
		}
	}
	return cases
}

func boolBit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// runOursForRef runs c through our windowed count, with Kafka Streams'
// settings: one partition, stream time only. It returns the results forwarded
// after each record.
func runOursForRef(t *testing.T, c refCase) [][]string {
	t.Helper()
	b := stream.NewBuilder()
	src := stream.Source(b, "in", stream.String(), stream.String())
	ms := func(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
	emit := window.OnWindowUpdate
	if c.emit == "final" {
		emit = window.OnWindowClose
	}
	opts := []window.Opt{window.Named("c"), window.Emit(emit), window.WallClockClose(false), window.LateRecordsTo("late")}
	var counts *stream.Stream[window.Windowed[string], int64]
	switch c.kind {
	case "session":
		counts = window.CountSessions(stream.GroupByKey(src), window.OfInactivityGapAndGrace(ms(c.gap), ms(c.grace)), opts...)
	case "sliding":
		counts = window.Count(stream.GroupByKey(src), window.OfTimeDifferenceAndGrace(ms(c.diff), ms(c.grace)), opts...)
	default:
		counts = window.Count(stream.GroupByKey(src), window.OfSizeAndGrace(ms(c.size), ms(c.grace)).AdvanceBy(ms(c.advance)), opts...)
	}
	counts.To("out", window.WindowedSerde(stream.String()), stream.Int64())
	top, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(top, stream.Partitions(1), stream.StartTime(time.UnixMilli(0)))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	out := streamtest.NewOutputTopic(d, "out", window.WindowedSerde(stream.String()), stream.Int64())
	steps := make([][]string, 0, len(c.recs))
	for _, r := range c.recs {
		require.NoError(t, in.PipeAt(r.key, "v", time.UnixMilli(r.ts)))
		kvs, err := out.ReadKeyValues()
		require.NoError(t, err)
		var lines []string
		for _, kv := range kvs {
			lines = append(lines, fmt.Sprintf("%s %d %d %d", kv.Key.Key, kv.Key.Start.UnixMilli(), kv.Key.End.UnixMilli(), kv.Value))
		}
		steps = append(steps, lines)
		d.RawOutput("late") // not compared: Kafka Streams drops late records
	}
	return steps
}

// firstRefDiff returns the first step whose results differ, or -1.
func firstRefDiff(got, want [][]string) int {
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || !slices.Equal(got[i], want[i]) {
			return i
		}
	}
	return -1
}

// minimizeRefCase shrinks c.recs[:step+1] (delta debugging: drop chunks while
// some difference remains), until nothing can be dropped or the deadline.
func minimizeRefCase(t *testing.T, ref *kafkaRef, c refCase, step int, deadline time.Time) refCase {
	t.Helper()
	fails := func(recs []refRecord) int {
		cc := c
		cc.recs = recs
		return firstRefDiff(runOursForRef(t, cc), ref.run(t, cc))
	}
	recs := slices.Clone(c.recs[:step+1])
	n := 2
	for len(recs) >= 2 && time.Now().Before(deadline) {
		chunk := (len(recs) + n - 1) / n
		reduced := false
		for i := 0; i < len(recs); i += chunk {
			cand := slices.Concat(recs[:i], recs[min(i+chunk, len(recs)):])
			if s := fails(cand); s >= 0 {
				recs, reduced = cand[:s+1], true
				n = max(n-1, 2)
				break
			}
		}
		if !reduced {
			if n >= len(recs) {
				break
			}
			n = min(2*n, len(recs))
		}
	}
	c.recs = recs
	c.name += "/min"
	return c
}

func describeRefCase(c refCase, want, got [][]string, step int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "case %s (%d records), per record: Kafka Streams | ours\n  %s\n", c.name, len(c.recs), c.config())
	show := func(lines []string) string {
		if len(lines) == 0 {
			return "-"
		}
		return strings.Join(lines, ", ")
	}
	from := 0
	if len(c.recs) > 20 {
		from = max(0, step-8)
	}
	if from > 0 {
		fmt.Fprintf(&sb, "  ... %d earlier records\n", from)
	}
	for i := from; i <= step && i < len(c.recs); i++ {
		var w, g []string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		mark := "  "
		if i == step {
			mark = "≠ "
		}
		fmt.Fprintf(&sb, "  %spipe %s %d\t-> kafka: %s | ours: %s\n", mark, c.recs[i].key, c.recs[i].ts, show(w), show(g))
	}
	return sb.String()
}

// kafkaRef is one JVM running the harness; cases go in one at a time.
type kafkaRef struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Scanner
	stderr *bytes.Buffer
}

const kstreamsRefDir = "testdata/kstreams-ref"

// startKafkaRef builds the harness if needed and starts it.
func startKafkaRef(t *testing.T) *kafkaRef {
	t.Helper()
	for _, tool := range []string{"java", "mvn"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("!!! %s not found: cannot compare with Kafka Streams (install a JDK 17+ and Maven)", tool)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	dir, err := filepath.Abs(kstreamsRefDir)
	require.NoError(t, err)
	jar := filepath.Join(dir, "target", "kstreams-ref-1.0.0.jar")
	cpFile := filepath.Join(dir, "target", "classpath.txt")
	if !kafkaRefUpToDate(dir, jar, cpFile) {
		start := time.Now()
		mvn := func(extra ...string) ([]byte, error) {
			args := append(extra, "-q", "-B", "-Dstyle.color=never", "-Dmaven.test.skip=true", "package")
			cmd := exec.CommandContext(t.Context(), "mvn", args...)
			cmd.Dir = dir
			return cmd.CombinedOutput()
		}
		// Offline first: with a warm ~/.m2 that needs no network.
		if offline, err := mvn("-o"); err != nil {
			t.Log("offline Maven build failed (cold ~/.m2?), retrying online")
			if out, err := mvn(); err != nil {
				t.Fatalf("building the Kafka Streams harness in %s: %v\noffline:\n%s\nonline:\n%s", dir, err, offline, out)
			}
		}
		t.Logf("built the Kafka Streams harness in %v", time.Since(start).Round(time.Millisecond))
	}
	cp, err := os.ReadFile(cpFile)
	require.NoError(t, err)
	classpath := jar + string(os.PathListSeparator) + strings.TrimSpace(string(cp))
	cmd := exec.Command("java", "-XX:+UseSerialGC", "-cp", classpath, "kstreamsref.Main")
	r := &kafkaRef{cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = r.stderr
	r.stdin, err = cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	r.out = bufio.NewScanner(stdout)
	r.out.Buffer(make([]byte, 0, 1<<16), 1<<20)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		r.stdin.Close() // the harness exits at end of input
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return r
}

// kafkaRefUpToDate: the jar is newer than the harness sources and every jar on
// the recorded classpath is still there.
func kafkaRefUpToDate(dir, jar, cpFile string) bool {
	built, err := os.Stat(jar)
	if err != nil {
		return false
	}
	cp, err := os.ReadFile(cpFile)
	if err != nil {
		return false
	}
	for _, p := range filepath.SplitList(strings.TrimSpace(string(cp))) {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	newer := false
	check := func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if info, err := d.Info(); err != nil || info.ModTime().After(built.ModTime()) {
			newer = true
		}
		return nil
	}
	if err := filepath.WalkDir(filepath.Join(dir, "pom.xml"), check); err != nil {
		return false
	}
	if err := filepath.WalkDir(filepath.Join(dir, "src"), check); err != nil {
		return false
	}
	return !newer
}

// run sends c to the harness and returns Kafka Streams' results after each
// record, without tombstones (see TestMatchesKafkaStreams).
func (r *kafkaRef) run(t *testing.T, c refCase) [][]string {
	t.Helper()
	script := c.script()
	werr := make(chan error, 1)
	go func() { // the harness writes while it reads: feed it concurrently
		_, err := io.WriteString(r.stdin, script)
		werr <- err
	}()
	fail := func(format string, args ...any) {
		t.Fatalf("Kafka Streams harness, case %s: %s\nstderr:\n%s", c.name, fmt.Sprintf(format, args...), r.stderrAfterExit())
	}
	if !r.out.Scan() {
		fail("no output: %v", r.out.Err())
	}
	if line := r.out.Text(); line != "case "+c.name {
		fail("got %q, want the case header", line)
	}
	steps := make([][]string, 0, len(c.recs))
	var cur []string
	for {
		if !r.out.Scan() {
			fail("output ends early: %v", r.out.Err())
		}
		line := r.out.Text()
		switch {
		case line == "end":
			if err := <-werr; err != nil {
				fail("writing input: %v", err)
			}
			if len(steps) != len(c.recs) {
				fail("%d steps for %d records", len(steps), len(c.recs))
			}
			return steps
		case line == "--":
			steps = append(steps, cur)
			cur = nil
		case strings.HasSuffix(line, " null"):
			// Deliberate difference: tombstones of merged-away sessions.
		default:
			cur = append(cur, line)
		}
	}
}

// stderrAfterExit stops the harness and returns what it wrote to stderr.
func (r *kafkaRef) stderrAfterExit() string {
	r.stdin.Close()
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
	return r.stderr.String()
}
