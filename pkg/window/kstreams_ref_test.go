package window_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
	"github.com/emostream/emostream/pkg/window"
)

// TestMatchesKafkaStreams checks the promise of WallClockClose(false): stream
// time alone decides, exactly as in Kafka Streams, so everything a user
// observes must match Kafka Streams'. It runs out-of-order input (one
// partition, no redelivery, the wall clock never advanced) through our
// windowed aggregation (a count whose aggregator calls are counted) and
// through the real Kafka Streams 4.4.0 (the harness in testdata/kstreams-ref,
// run under TopologyTestDriver, with aggregate(...) and caching disabled), and
// compares, after every input record:
//
//   - the result records forwarded, in order, each as key, window start and
//     end, value (tombstones included, see below) and the output record's
//     timestamp: every result written exactly once, nothing repeated;
//   - the number of aggregator calls the record caused;
//   - drops: ours is the change of streamtest's DroppedRecords plus
//     DeadLetters (every reason), Kafka's the change of the task-level
//     dropped-records-total metric. Ours must be 0 or 1 per record, and 1
//     exactly when Kafka Streams aggregated the record nowhere (no silent
//     drop, no double handling). For tumbling and session windows, and for
//     negative timestamps, it must equal Kafka's.
//
// Emit strategies: emit=update is OnWindowUpdate (Kafka's
// emitStrategy(onWindowUpdate())), emit=close is OnWindowClose
// (emitStrategy(onWindowClose())), emit=suppress is UntilWindowCloses
// (onWindowUpdate followed by suppress(untilWindowCloses(unbounded()))), for
// all four window kinds. Late records are dropped (DropLateRecords) in half
// the random cases and dead-lettered (LateRecordsTo) in the other half.
//
// The cases: hand-written boundary cases (the reproductions among
// them), then at least 1,000 random cases over tumbling, hopping, session and
// sliding windows (two time differences) × the three emit strategies × grace
// zero or not, with keys that are prefixes of each other, out-of-order and
// late records, timestamps on a coarse grid in some cases (records exactly on
// window ends and close points), a few negative timestamps in some, times
// near the epoch in some. In about a third of them our driver is restarted
// (streamtest's Driver.Restart, a clean shutdown and restart of every task on
// its stores) after random records: the expected output stays Kafka Streams'
// uninterrupted run, as a clean restart must change nothing.
//
// Documented differences, allowed here:
//
//   - Drop counts of hopping and sliding windows: Kafka Streams counts a
//     dropped record once per closed window it would update (so even a record
//     that was aggregated into open windows can count), ours once per record
//     aggregated nowhere. For them Kafka's count must be at least ours, and at
//     least 1 when Kafka aggregated the record nowhere.
//   - Tombstones are opt-in: on a session merge Kafka Streams (emit=update)
//     forwards a null for every session the merged one replaces. Ours does
//     with AggregateSessionsWithTombstones (compared null for null, in half
//     the session cases, every emit strategy); the default AggregateSessions
//     forwards no tombstones and is compared with Kafka's output without its
//     null lines.
//   - Retention: for tumbling and hopping windows with emit=close and for
//     sliding windows, Kafka's window store is given a longer retention
//     (size + grace + 5 min; 2*diff + grace + 5 min): with its default Kafka Streams
//     hides stored windows from its own fetches after a jump of stream time,
//     and emitStrategy(onWindowClose) then never emits them; ours keeps and
//     emits them. Sessions use Kafka's default retention (gap + grace), which
//     is what keeps closed sessions out of merges, as ours does.
//   - Lost sessions: with that default retention and emit=close, Kafka
//     Streams loses the final result of a session whose 60 s store segment
//     expired before stream time reached the session's close point (stream
//     time crossed a segment boundary while the session was open, typically
//     in a jump); ours emits it. Such result lines, never emitted by Kafka
//     Streams, are left out of ours before comparing (see
//     kafkaLostSessions).
//
// Every run draws a new seed, logged at the start and in every failure; set
// WINDOW_REF_SEED=<seed> to run the same cases again (and -run with the
// failing case's name, printed with it, to run only that case);
// WINDOW_REF_CASES=<n> changes the number of random cases (default 1050). A mismatching case is shrunk to a
// minimal failing record sequence, printed with both outputs step by step.
// The harness can also be run by hand (input format in its Main.java):
//
//	cd pkg/window/testdata/kstreams-ref && mvn -q package
//	java -cp target/kstreams-ref-1.0.0.jar:$(cat target/classpath.txt) kstreamsref.Main < case.txt
//
// It needs java and mvn (and Maven Central, the first time); without them the
// test is skipped, except under CI=true where it fails.
func TestMatchesKafkaStreams(t *testing.T) {
	seed := refSeed(t)
	t.Logf("seed %d: WINDOW_REF_SEED=%d reproduces this run", seed, seed)
	// Kafka Streams runs every case in the background, ahead of ours, in
	// two JVMs: it takes longer than ours.
	refs := startKafkaRefs(t, 2)
	cases := append(handRefCases(), genRefCases(seed, refRandomCases(t))...)
	t.Logf("%d cases (%d random)", len(cases), len(cases)-len(handRefCases()))
	// Cases are submitted ahead of the one compared, so the harnesses keep
	// busy; cases -run leaves out are not run by them either.
	results := make([]<-chan refResult, len(cases))
	submitted := 0
	prefetch := func(i int) {
		for j := max(i, submitted); j < min(i+64, len(cases)); j++ {
			results[j] = refs.submit(j, cases[j])
			submitted = j + 1
		}
	}
	var shrinkRef *kafkaRef // another JVM, started on the first failure
	shrinkDeadline := time.Now().Add(60 * time.Second)
	minimized := map[string]bool{}
	failures := 0
	var shrinking, waiting, ours time.Duration
	pt := t
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if results[i] == nil {
				results[i] = refs.submit(i, c)
			}
			prefetch(i + 1)
			start := time.Now()
			want, err := waitKafkaRef(results[i])
			waiting += time.Since(start)
			if err != nil {
				t.Fatalf("seed=%d case %s: %v", seed, c.name, err)
			}
			start = time.Now()
			got, oursErr := runOursForRef(c)
			ours += time.Since(start)
			step, why := firstRefDiff(c, got, want, oursErr)
			if step < 0 {
				return
			}
			failures++
			repro := fmt.Sprintf("WINDOW_REF_SEED=%d go test -run '^%s$' ./pkg/window/", seed, refRunPattern(t.Name()))
			// Shrink the first random failure of each window kind and emit
			// strategy (the hand-written cases are small already).
			group := c.kind + "/" + c.emit
			if !strings.HasPrefix(c.name, "hand/") && !minimized[group] && time.Now().Before(shrinkDeadline) {
				minimized[group] = true
				if shrinkRef == nil {
					if shrinkRef, err = launchKafkaRef(); err != nil {
						t.Fatalf("starting a second harness to shrink with: %v", err)
					}
					pt.Cleanup(shrinkRef.stop)
				}
				start := time.Now()
				small := minimizeRefCase(shrinkRef, c, step, shrinkDeadline)
				shrinking += time.Since(start)
				if sw, err := shrinkRef.run(small); err == nil {
					sg, serr := runOursForRef(small)
					if s, w := firstRefDiff(small, sg, sw, serr); s >= 0 {
						t.Logf("shrunk %d records to %d in %v", len(c.recs), len(small.recs), time.Since(start).Round(time.Millisecond))
						t.Errorf("seed=%d: %s: minimal case differs from Kafka Streams 4.4.0 at record %d (pipe %s %d): %s\n%s",
							seed, small.name, s, small.recs[s].key, small.recs[s].ts, w, describeRefCase(small, sw, sg, serr, s))
					}
				}
			}
			if failures > 40 {
				// Enough detail above: one line each for the rest.
				t.Errorf("seed=%d: differs from Kafka Streams 4.4.0 at record %d (pipe %s %d): %s\n  reproduce: %s",
					seed, step, c.recs[step].key, c.recs[step].ts, why, repro)
				return
			}
			t.Errorf("seed=%d: differs from Kafka Streams 4.4.0 at record %d (pipe %s %d): %s\n  reproduce: %s\n%s",
				seed, step, c.recs[step].key, c.recs[step].ts, why, repro, describeRefCase(c, want, got, oursErr, step))
		})
	}
	t.Logf("waited %v for Kafka Streams, ran ours for %v", waiting.Round(time.Millisecond), ours.Round(time.Millisecond))
	if failures > 0 {
		t.Logf("%d of %d cases differ (shrinking took %v); seed %d (WINDOW_REF_SEED=%d reproduces them)",
			failures, len(cases), shrinking.Round(time.Millisecond), seed, seed)
	}
}

// refRunPattern turns a subtest name into a -run pattern matching only it.
func refRunPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = regexpQuote(p)
	}
	return strings.Join(parts, "$/^")
}

func regexpQuote(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// refSeed is WINDOW_REF_SEED, or a new seed for every run.
func refSeed(t *testing.T) uint64 {
	if s := os.Getenv("WINDOW_REF_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "WINDOW_REF_SEED")
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// refRandomCases is the number of random cases: WINDOW_REF_CASES, at least
// 1,000 by default.
func refRandomCases(t *testing.T) int {
	if s := os.Getenv("WINDOW_REF_CASES"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, "WINDOW_REF_CASES")
		return n
	}
	return 1050
}

type refRecord struct {
	key string
	ts  int64
}

// refInput is an input record of a case.
type refInput struct {
	refRecord
	// restart: our driver is restarted (Driver.Restart) after this record;
	// Kafka Streams runs on uninterrupted.
	restart bool
}

type refCase struct {
	name                            string
	kind                            string // tumbling, hopping, session or sliding
	size, advance, gap, diff, grace int64  // ms
	emit                            string // update, close or suppress
	retention                       int64  // Kafka's store retention, ms; 0: its default
	dropLate                        bool   // DropLateRecords, else LateRecordsTo("late")
	tombstones                      bool   // sessions: ours with AggregateSessionsWithTombstones
	recs                            []refInput
}

// refStep is what one input record caused: the result lines
// "KEY START END VALUE TS", the records dropped or dead-lettered and the
// aggregator calls.
type refStep struct {
	lines   []string
	dropped int64
	aggs    int64
}

func (c refCase) config() string {
	var s string
	switch c.kind {
	case "session":
		s = fmt.Sprintf("config kind=%s gap=%d grace=%d emit=%s", c.kind, c.gap, c.grace, c.emit)
	case "sliding":
		s = fmt.Sprintf("config kind=%s diff=%d grace=%d emit=%s", c.kind, c.diff, c.grace, c.emit)
	default:
		s = fmt.Sprintf("config kind=%s size=%d advance=%d grace=%d emit=%s", c.kind, c.size, c.advance, c.grace, c.emit)
	}
	if c.retention > 0 {
		s += fmt.Sprintf(" retention=%d", c.retention)
	}
	return s
}

// kafkaRetention is the retention Kafka's store gets for c: size + grace +
// 5 min for time windows with emit=close (ours keeps windows from size +
// grace after their close, and only until they are emitted and a commit
// covered that) and ours (2 * diff + grace + 5 min) for sliding windows, where
// Kafka Streams' default would hide windows after a jump of stream time (see
// TestMatchesKafkaStreams); otherwise its default (0).
func kafkaRetention(c refCase) int64 {
	const fiveMin = 5 * 60 * 1000
	switch {
	case c.kind == "sliding":
		return 2*c.diff + c.grace + fiveMin
	case (c.kind == "tumbling" || c.kind == "hopping") && c.emit == "close":
		return c.size + c.grace + fiveMin
	}
	return 0
}

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
// the epoch, the instant a session closes, sliding windows' early records,
// equal timestamps and partly closed records, the reproductions of the issue
// (output timestamps, silent drops, negative timestamps, the session close
// point) and clean restarts between records.
func handRefCases() []refCase {
	recs := func(kts ...any) []refInput {
		var out []refInput
		for i := 0; i < len(kts); i++ {
			if kts[i] == "restart" {
				out[len(out)-1].restart = true
				continue
			}
			out = append(out, refInput{refRecord: refRecord{key: kts[i].(string), ts: int64(kts[i+1].(int))}})
			i++
		}
		return out
	}
	tumble := refCase{kind: "tumbling", size: 2000, advance: 2000}
	hop := refCase{kind: "hopping", size: 3000, advance: 1000}
	sess := refCase{kind: "session", gap: 800}
	slide := refCase{kind: "sliding", diff: 1000}
	shapeOf := map[string]refCase{"tumbling": tumble, "hopping": hop, "session": sess, "sliding": slide}
	type hand struct {
		name  string
		shape *refCase // nil: by name prefix
		recs  []refInput
	}
	shape := func(c refCase) *refCase { return &c }
	var cases []refCase
	for _, emit := range []string{"update", "close", "suppress"} {
		for _, h := range []hand{
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

			// The reproductions. Output timestamps: a window's result
			// carries the largest timestamp of its records.
			{name: "tumbling-issue-ts", shape: shape(refCase{kind: "tumbling", size: 500, advance: 500}), recs: recs("k", 550, "k", 500, "k", 1000)},
			{name: "tumbling-issue-close-ts", shape: shape(refCase{kind: "tumbling", size: 500, advance: 500}), recs: recs("k", 10, "k", 15, "k", 500)},
			{name: "session-issue-ts", shape: shape(refCase{kind: "session", gap: 500}), recs: recs("k", 600, "k", 599, "k", 2000)},
			{name: "sliding-issue-ts", shape: shape(refCase{kind: "sliding", diff: 10}), recs: recs("k", 100, "k", 105, "k", 103, "k", 200)},
			// Silent drops: the second record is aggregated nowhere.
			{name: "sliding-issue-drop-grace", shape: shape(refCase{kind: "sliding", diff: 4, grace: 6}), recs: recs("b", 29, "a", 20, "b", 40)},
			{name: "sliding-issue-drop", shape: shape(refCase{kind: "sliding", diff: 10}), recs: recs("a", 100, "b", 95, "a", 200)},
			// The session close point: a[0,0] closes when stream time passes 10.
			{name: "session-issue-close", shape: shape(refCase{kind: "session", gap: 10}), recs: recs("a", 0, "b", 10, "b", 11)},
			// Final results of sessions with the same end: Kafka Streams'
			// emitStrategy(onWindowClose) orders them by start, then key;
			// suppression by key.
			{name: "session-close-order", shape: shape(refCase{kind: "session", gap: 300}), recs: recs("b", 900, "b", 1000, "a", 800, "a", 1000, "ab", 1000, "z", 2000)},
			// Stream time jumps past a 60 s segment of Kafka's session store:
			// with emit=close Kafka Streams loses abc@[1019311,1019311].
			{name: "session-segment-jump", shape: shape(refCase{kind: "session", gap: 300, grace: 300}), recs: recs("abc", 1019311, "a", 1021398, "a", 1091398)},
			// Negative timestamps: aggregated nowhere, counted.
			{name: "tumbling-negative", shape: shape(refCase{kind: "tumbling", size: 500, advance: 500}), recs: recs("b", -2, "a", 0, "b", -1, "a", 3, "a", 600)},
			{name: "hopping-negative", shape: shape(refCase{kind: "hopping", size: 500, advance: 100}), recs: recs("b", -2, "a", 0, "b", -1, "a", 3, "a", 600)},
			{name: "session-negative", shape: shape(refCase{kind: "session", gap: 10}), recs: recs("b", -2, "a", 0, "b", -1, "a", 3, "a", 600)},
			{name: "sliding-negative", shape: shape(refCase{kind: "sliding", diff: 10}), recs: recs("b", -2, "a", 0, "b", -1, "a", 3, "a", 600)},

			// Clean restarts of our driver between records: nothing repeated,
			// nothing lost, the same timestamps.
			{name: "tumbling-restart", recs: recs("a", 100, "restart", "b", 2100, "restart", "a", 2200, "b", 1900, "restart", "b", 4500, "restart", "a", 4600, "b", 9000, "restart")},
			{name: "hopping-restart", recs: recs("a", 100, "a", 1500, "restart", "b", 3100, "restart", "a", 2900, "restart", "b", 7000, "restart", "b", 7100)},
			{name: "session-restart", recs: recs("a", 0, "a", 500, "restart", "b", 2000, "restart", "a", 1300, "a", 2100, "restart", "b", 5000, "restart", "a", 5100)},
			{name: "sliding-restart", recs: recs("a", 5000, "a", 5600, "restart", "a", 5300, "restart", "b", 7000, "restart", "a", 6900, "b", 9000, "restart", "a", 9100)},
		} {
			c := shapeOf[h.name[:strings.IndexByte(h.name, '-')]]
			if h.shape != nil {
				c = *h.shape
			}
			c.name, c.emit, c.recs = "hand/"+h.name+"/emit="+emit, emit, h.recs
			c.retention = kafkaRetention(c)
			cases = append(cases, c)
			if c.kind == "session" {
				c.name += "/tombstones"
				c.tombstones = true
				cases = append(cases, c)
			}
			if strings.Contains(h.name, "drop") || strings.Contains(h.name, "negative") {
				c.name, c.tombstones, c.dropLate = "hand/"+h.name+"/emit="+emit+"/drop", false, true
				cases = append(cases, c)
			}
		}
	}
	return cases
}

// genRefCases returns n random cases for seed: case j is tumbling, hopping,
// session or sliding windows (time difference 1000 or 300) as j/6 mod 5,
// emit update, close or suppress as j/2 mod 3, with grace when j is odd; the
// rest (sizes, grace, timestamps, keys, late handling, restarts) is drawn
// from (seed, j).
func genRefCases(seed uint64, n int) []refCase {
	// Some keys are prefixes of others: results are ordered by key bytes.
	keys := []string{"a", "ab", "abc", "b", "ba"}
	emits := []string{"update", "close", "suppress"}
	var cases []refCase
	for j := range n {
		rng := rand.New(rand.NewPCG(seed, uint64(j)))
		pick := func(vs ...int64) int64 { return vs[rng.IntN(len(vs))] }
		c := refCase{emit: emits[j/2%3], dropLate: rng.IntN(2) == 0}
		switch j / 6 % 5 {
		case 0:
			c.kind = "tumbling"
			c.size = pick(500, 1000, 2000)
			c.advance = c.size
		case 1:
			c.kind = "hopping"
			hs := [][2]int64{{3000, 1000}, {2000, 500}, {1000, 300}, {2500, 1000}, {1500, 700}}[rng.IntN(5)]
			c.size, c.advance = hs[0], hs[1]
		case 2:
			c.kind = "session"
			c.gap = pick(300, 800, 1500)
			c.tombstones = rng.IntN(2) == 0
		case 3:
			c.kind, c.diff = "sliding", 1000
		case 4:
			c.kind, c.diff = "sliding", 300
		}
		if j%2 == 1 {
			c.grace = pick(300, 700, 2000)
		}
		c.retention = kafkaRetention(c)

		var base int64
		switch rng.IntN(6) {
		case 0, 1: // near the epoch
		case 2:
			base = 1_700_000_000_000 + rng.Int64N(1_000_000)
		default:
			base = 1_000_000 + rng.Int64N(10_000)
		}
		grid := int64(1)
		if rng.IntN(3) == 0 {
			grid = 100 // records on window ends and close points
		}
		negatives := rng.IntN(4) == 0
		restarts := rng.IntN(3) == 0
		nrec := 20 + rng.IntN(131)
		for range nrec {
			base += rng.Int64N(300)
			if rng.IntN(40) == 0 {
				base += rng.Int64N(20_000) // a jump of stream time
			}
			lag := rng.Int64N(1000) // out of order
			if rng.IntN(5) == 0 {
				lag = rng.Int64N(4000) // often late
			}
			ts := floorDivRef(base-lag, grid) * grid
			switch {
			case negatives && rng.IntN(12) == 0:
				ts = -grid * (1 + rng.Int64N(20))
			case !negatives:
				ts = max(0, ts)
			}
			c.recs = append(c.recs, refInput{refRecord{keys[rng.IntN(len(keys))], ts}, restarts && rng.IntN(8) == 0})
		}
		if restarts {
			c.recs[rng.IntN(len(c.recs))].restart = true
		}
		var shape string
		switch c.kind {
		case "session":
			shape = fmt.Sprintf("gap=%d", c.gap)
		case "sliding":
			shape = fmt.Sprintf("diff=%d", c.diff)
		default:
			shape = fmt.Sprintf("size=%d/advance=%d", c.size, c.advance)
		}
		c.name = fmt.Sprintf("random/%04d/%s/%s/grace=%d/emit=%s", j, c.kind, shape, c.grace, c.emit)
		if c.dropLate {
			c.name += "/drop"
		}
		if c.tombstones {
			c.name += "/tombstones"
		}
		if restarts {
			c.name += "/restarts"
		}
		cases = append(cases, c)
	}
	return cases
}

func floorDivRef(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// runOursForRef runs c through our windowed aggregation (a count whose
// aggregator calls are counted), with Kafka Streams' settings: one partition,
// stream time only. It returns what each record caused, and the error that
// stopped the run, if any.
//
// A step's dropped is the change of streamtest's DroppedRecords plus
// DeadLetters (all reasons). Reading those counters after every record costs
// more than the rest of the run under -race, so first the counters that can
// move are read (with LateRecordsTo, the records written to the dead-letter
// topic stand for DeadLetters; with DropLateRecords, DroppedRecords is read
// and dead letters are counted so too), and the totals of the others checked
// at the end; if they do not agree, the case runs again reading both
// counters after every record.
func runOursForRef(c refCase) ([]refStep, error) {
	steps, err := runOurs(c, false)
	if errors.Is(err, errRefCounters) {
		return runOurs(c, true)
	}
	return steps, err
}

var errRefCounters = errors.New("dropped and dead-letter counters disagree with the dead-letter topic")

func runOurs(c refCase, precise bool) (steps []refStep, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	b := stream.NewBuilder()
	src := stream.Source(b, "in", stream.String(), stream.String())
	ms := func(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
	emit := map[string]window.EmitStrategy{"update": window.OnWindowUpdate, "close": window.OnWindowClose, "suppress": window.UntilWindowCloses}[c.emit]
	opts := []window.Opt{window.Named("c"), window.Emit(emit), window.WallClockClose(false)}
	if c.dropLate {
		opts = append(opts, window.DropLateRecords())
	} else {
		opts = append(opts, window.LateRecordsTo("late"))
	}
	var aggs int64
	initializer := func() int64 { return 0 }
	aggregator := func(_, _ string, n int64) int64 { aggs++; return n + 1 }
	merger := func(_ string, a, b int64) int64 { return a + b }
	g := stream.GroupByKey(src)
	ws := window.WindowedSerde(stream.String())
	switch {
	case c.kind == "session" && c.tombstones:
		window.AggregateSessionsWithTombstones(g, window.OfInactivityGapAndGrace(ms(c.gap), ms(c.grace)), initializer, aggregator, merger, stream.Int64(), opts...).
			To("out", ws, window.TombstoneSerde(stream.Int64()))
	case c.kind == "session":
		window.AggregateSessions(g, window.OfInactivityGapAndGrace(ms(c.gap), ms(c.grace)), initializer, aggregator, merger, stream.Int64(), opts...).
			To("out", ws, stream.Int64())
	case c.kind == "sliding":
		window.Aggregate(g, window.OfTimeDifferenceAndGrace(ms(c.diff), ms(c.grace)), initializer, aggregator, stream.Int64(), opts...).
			To("out", ws, stream.Int64())
	default:
		window.Aggregate(g, window.OfSizeAndGrace(ms(c.size), ms(c.grace)).AdvanceBy(ms(c.advance)), initializer, aggregator, stream.Int64(), opts...).
			To("out", ws, stream.Int64())
	}
	top, err := b.Build()
	if err != nil {
		return nil, err
	}
	d, err := streamtest.New(top, stream.Partitions(1), stream.StartTime(time.UnixMilli(0)))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	in := streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
	line := func(k window.Windowed[string], v string, ts time.Time) string {
		return fmt.Sprintf("%s %d %d %s %d", k.Key, k.Start.UnixMilli(), k.End.UnixMilli(), v, ts.UnixMilli())
	}
	var read func() ([]string, error)
	if c.kind == "session" && c.tombstones {
		out := streamtest.NewOutputTopic(d, "out", ws, window.TombstoneSerde(stream.Int64()))
		read = func() ([]string, error) {
			recs, err := out.ReadRecords()
			var lines []string
			for _, r := range recs {
				v := "null"
				if r.Value != nil {
					v = strconv.FormatInt(*r.Value, 10)
				}
				lines = append(lines, line(r.Key, v, r.Timestamp))
			}
			return lines, err
		}
	} else {
		out := streamtest.NewOutputTopic(d, "out", ws, stream.Int64())
		read = func() ([]string, error) {
			recs, err := out.ReadRecords()
			var lines []string
			for _, r := range recs {
				lines = append(lines, line(r.Key, strconv.FormatInt(r.Value, 10), r.Timestamp))
			}
			return lines, err
		}
	}
	sum := func(m map[string]int64) (n int64) {
		for _, v := range m {
			n += v
		}
		return n
	}
	// Gathering the counters is costly: per record, only those that can
	// move are read (see runOursForRef), the others checked at the end.
	var deadLettered, prev int64
	for i, r := range c.recs {
		aggs = 0
		if err := in.PipeAt(r.key, "v", time.UnixMilli(r.ts)); err != nil {
			return steps, fmt.Errorf("record %d: %w", i, err)
		}
		if r.restart {
			if err := d.Restart(); err != nil {
				return steps, fmt.Errorf("restart after record %d: %w", i, err)
			}
		}
		lines, err := read()
		if err != nil {
			return steps, fmt.Errorf("record %d: reading results: %w", i, err)
		}
		// What is dead-lettered is counted, not compared.
		deadLettered += int64(len(d.RawOutput("late")))
		var n int64
		switch {
		case precise:
			n = sum(d.DroppedRecords()) + sum(d.DeadLetters())
		case c.dropLate:
			n = sum(d.DroppedRecords()) + deadLettered
		default:
			n = deadLettered
		}
		steps = append(steps, refStep{lines: lines, dropped: n - prev, aggs: aggs})
		prev = n
	}
	if !precise {
		dropped, dead := sum(d.DroppedRecords()), sum(d.DeadLetters())
		if dead != deadLettered || (!c.dropLate && dropped != 0) {
			return steps, fmt.Errorf("%w: %d dropped, %d dead letters counted, %d records in the dead-letter topic",
				errRefCounters, dropped, dead, deadLettered)
		}
	}
	return steps, nil
}

// firstRefDiff returns the first record whose step differs (and how), or -1.
func firstRefDiff(c refCase, got, want []refStep, oursErr error) (int, string) {
	var lost func(step int, line string) bool
	if c.kind == "session" && c.emit == "close" {
		lost = kafkaLostSessions(c, want)
	}
	for i, r := range c.recs {
		switch {
		case i >= len(want):
			return i, "Kafka Streams gave no result"
		case i >= len(got):
			return i, fmt.Sprintf("ours failed: %v", oursErr)
		}
		g := got[i]
		if lost != nil {
			g.lines = slices.DeleteFunc(slices.Clone(g.lines), func(l string) bool { return lost(i, l) })
		}
		if why := refStepProblem(c, r, g, want[i]); why != "" {
			if len(g.lines) != len(got[i].lines) {
				why += fmt.Sprintf(" (ours without %d final results Kafka Streams lost with a store segment)", len(got[i].lines)-len(g.lines))
			}
			return i, why
		}
	}
	return -1, ""
}

// kafkaLostSessions reports the final session results of ours that Kafka
// Streams lost (see TestMatchesKafkaStreams): with emitStrategy(onWindowClose)
// it emits a closed session by reading it back from its RocksDB session
// store, whose default retention is gap + grace and whose segments are 60 s
// wide (max(retention / 2, 60 s)). When stream time reaches the close point
// of a session only after its segment expired (the segment's end is older
// than stream time - retention), the session is gone: never emitted.
// Passing a longer retention would avoid that but let closed sessions merge
// with new records (Kafka Streams then emits a session twice), so the
// sessions Kafka Streams lost are left out of ours when comparing: a result
// line of step i that Kafka never emits, for a session whose segment had
// expired at step i's stream time.
func kafkaLostSessions(c refCase, want []refStep) func(step int, line string) bool {
	window := func(line string) (string, int64) {
		f := strings.Fields(line)
		end, _ := strconv.ParseInt(f[2], 10, 64)
		return strings.Join(f[:3], " "), end
	}
	emitted := map[string]bool{}
	for _, s := range want {
		for _, l := range s.lines {
			w, _ := window(l)
			emitted[w] = true
		}
	}
	retention := c.gap + c.grace
	interval := max(retention/2, 60_000)
	streamTime := make([]int64, len(c.recs))
	st := int64(-1)
	for i, r := range c.recs {
		st = max(st, r.ts) // negative timestamps are dropped before
		streamTime[i] = st
	}
	return func(i int, line string) bool {
		w, end := window(line)
		return !emitted[w] && floorDivRef(end, interval) < floorDivRef(streamTime[i]-retention, interval)
	}
}

// refStepProblem says how our step for r differs from Kafka Streams' ("" if
// it does not; see TestMatchesKafkaStreams for the drop rules).
func refStepProblem(c refCase, r refInput, got, want refStep) string {
	if !slices.Equal(got.lines, want.lines) {
		return fmt.Sprintf("results: Kafka Streams %s, ours %s", showRefLines(want.lines), showRefLines(got.lines))
	}
	if got.aggs != want.aggs {
		return fmt.Sprintf("aggregator calls: Kafka Streams %d, ours %d", want.aggs, got.aggs)
	}
	o, d := got.dropped, want.dropped
	switch {
	case o < 0 || o > 1:
		return fmt.Sprintf("ours dropped or dead-lettered the record %d times", o)
	case o == 1 && want.aggs > 0:
		return fmt.Sprintf("ours dropped or dead-lettered a record Kafka Streams aggregated (%d aggregator calls)", want.aggs)
	case o == 0 && want.aggs == 0:
		return fmt.Sprintf("silent drop: aggregated nowhere, but neither dropped nor dead-lettered by ours (Kafka Streams counted %d dropped)", d)
	case c.kind == "tumbling" || c.kind == "session" || r.ts < 0:
		if o != d {
			return fmt.Sprintf("dropped count: Kafka Streams %d, ours %d", d, o)
		}
	case d < o:
		return fmt.Sprintf("dropped count: Kafka Streams %d, ours %d (Kafka counts per closed window, at least ours)", d, o)
	case want.aggs == 0 && d < 1:
		return "Kafka Streams aggregated the record nowhere but counted no drop"
	}
	return ""
}

func showRefLines(lines []string) string {
	if len(lines) == 0 {
		return "-"
	}
	return strings.Join(lines, ", ")
}

// minimizeRefCase shrinks c.recs[:step+1] (delta debugging: drop chunks while
// some difference remains), then drops the restarts that are not needed,
// until nothing can be dropped or the deadline.
func minimizeRefCase(ref *kafkaRef, c refCase, step int, deadline time.Time) refCase {
	fails := func(recs []refInput) int {
		cc := c
		cc.recs = recs
		want, err := ref.run(cc)
		if err != nil {
			return -1
		}
		got, oursErr := runOursForRef(cc)
		s, _ := firstRefDiff(cc, got, want, oursErr)
		return s
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
	for i := range recs {
		if !recs[i].restart || !time.Now().Before(deadline) {
			continue
		}
		cand := slices.Clone(recs)
		cand[i].restart = false
		if s := fails(cand); s >= 0 {
			recs = cand[:s+1]
			if i >= len(recs) {
				break
			}
		}
	}
	c.recs = recs
	c.name += "/min"
	return c
}

func describeRefCase(c refCase, want, got []refStep, oursErr error, step int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "case %s (%d records), per record: Kafka Streams | ours\n  %s\n", c.name, len(c.recs), c.config())
	late := "LateRecordsTo(late)"
	if c.dropLate {
		late = "DropLateRecords()"
	}
	variant := "default"
	if c.tombstones {
		variant = "AggregateSessionsWithTombstones"
	}
	fmt.Fprintf(&sb, "  ours: %s, %s, restarts marked R\n", late, variant)
	show := func(s refStep) string {
		return fmt.Sprintf("%s (dropped=%d aggs=%d)", showRefLines(s.lines), s.dropped, s.aggs)
	}
	from := 0
	if len(c.recs) > 20 {
		from = max(0, step-8)
	}
	if from > 0 {
		fmt.Fprintf(&sb, "  ... %d earlier records\n", from)
	}
	for i := from; i <= step && i < len(c.recs); i++ {
		w, g := "?", "?"
		if i < len(want) {
			w = show(want[i])
		}
		if i < len(got) {
			g = show(got[i])
		} else if oursErr != nil {
			g = "error: " + oursErr.Error()
		}
		mark := "  "
		if i == step {
			mark = "≠ "
		}
		r := " "
		if c.recs[i].restart {
			r = "R"
		}
		fmt.Fprintf(&sb, "  %spipe %s %d %s\t-> kafka: %s | ours: %s\n", mark, c.recs[i].key, c.recs[i].ts, r, w, g)
	}
	return sb.String()
}

type refResult struct {
	steps []refStep
	err   error
}

// kafkaRef is one JVM running the harness. Cases are submitted in order and
// run in the background; a reader parses the results of each in turn.
type kafkaRef struct {
	cmd                    *exec.Cmd
	stdin                  io.WriteCloser
	out                    *bufio.Scanner
	stderr                 *bytes.Buffer
	scripts                chan string
	pending                chan pendingRef
	mu                     sync.Mutex // orders submissions
	closed                 bool
	readerDone, writerDone chan struct{}
	waitOnce               sync.Once
	waitErr                error
}

type pendingRef struct {
	c  refCase
	ch chan refResult
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
	r, err := launchKafkaRef()
	require.NoError(t, err)
	t.Cleanup(r.stop)
	return r
}

// kafkaRefs is a pool of harnesses (one JVM each) sharing the cases.
type kafkaRefs []*kafkaRef

// startKafkaRefs starts n harnesses (see startKafkaRef).
func startKafkaRefs(t *testing.T, n int) kafkaRefs {
	t.Helper()
	refs := kafkaRefs{startKafkaRef(t)}
	for len(refs) < n {
		r, err := launchKafkaRef()
		require.NoError(t, err)
		t.Cleanup(r.stop)
		refs = append(refs, r)
	}
	return refs
}

// submit queues case i on one of the harnesses.
func (rs kafkaRefs) submit(i int, c refCase) <-chan refResult { return rs[i%len(rs)].submit(c) }

// launchKafkaRef starts the built harness; stop it with stop.
func launchKafkaRef() (*kafkaRef, error) {
	dir, err := filepath.Abs(kstreamsRefDir)
	if err != nil {
		return nil, err
	}
	cp, err := os.ReadFile(filepath.Join(dir, "target", "classpath.txt"))
	if err != nil {
		return nil, err
	}
	classpath := filepath.Join(dir, "target", "kstreams-ref-1.0.0.jar") + string(os.PathListSeparator) + strings.TrimSpace(string(cp))
	// C1 only: the cases are short, the C2 compiler would cost more CPU than
	// it saves. The state stores (RocksDB) go to a tmpfs when there is one.
	args := []string{"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"}
	if probe, err := os.MkdirTemp("/dev/shm", "kstreams-ref-probe-"); err == nil {
		os.Remove(probe)
		args = append(args, "-Djava.io.tmpdir=/dev/shm")
	}
	cmd := exec.Command("java", append(args, "-cp", classpath, "kstreamsref.Main")...)
	r := &kafkaRef{
		cmd: cmd, stderr: &bytes.Buffer{},
		scripts: make(chan string, 4096), pending: make(chan pendingRef, 4096),
		readerDone: make(chan struct{}), writerDone: make(chan struct{}),
	}
	cmd.Stderr = r.stderr
	if r.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	r.out = bufio.NewScanner(stdout)
	r.out.Buffer(make([]byte, 0, 1<<16), 1<<20)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { // the harness writes while it reads: feed it concurrently
		defer close(r.writerDone)
		defer r.stdin.Close() // the harness exits at end of input
		for s := range r.scripts {
			if _, err := io.WriteString(r.stdin, s); err != nil {
				for range r.scripts { // the reader reports the failure
				}
				return
			}
		}
	}()
	go func() {
		defer close(r.readerDone)
		var broken error
		for p := range r.pending {
			if broken != nil {
				p.ch <- refResult{err: broken}
				continue
			}
			steps, err := r.read(p.c)
			if err != nil {
				broken = fmt.Errorf("Kafka Streams harness, case %s: %w\nstderr:\n%s", p.c.name, err, r.stderrAfterExit())
			}
			p.ch <- refResult{steps: steps, err: broken}
		}
	}()
	return r, nil
}

// submit queues c; its results arrive on the returned channel.
func (r *kafkaRef) submit(c refCase) <-chan refResult {
	ch := make(chan refResult, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		ch <- refResult{err: fmt.Errorf("harness stopped")}
		return ch
	}
	r.pending <- pendingRef{c, ch}
	r.scripts <- c.script()
	return ch
}

// waitKafkaRef returns the results of a submitted case.
func waitKafkaRef(ch <-chan refResult) ([]refStep, error) {
	select {
	case res := <-ch:
		return res.steps, res.err
	case <-time.After(2 * time.Minute):
		return nil, fmt.Errorf("Kafka Streams harness: no result after 2 minutes")
	}
}

// run runs c alone and returns Kafka Streams' steps.
func (r *kafkaRef) run(c refCase) ([]refStep, error) { return waitKafkaRef(r.submit(c)) }

// read parses the harness's output for c: after each record the result lines
// (without tombstones unless c.tombstones) and the mark's counts.
func (r *kafkaRef) read(c refCase) ([]refStep, error) {
	if !r.out.Scan() {
		return nil, fmt.Errorf("no output: %v", r.out.Err())
	}
	if line := r.out.Text(); line != "case "+c.name {
		return nil, fmt.Errorf("got %q, want the case header", line)
	}
	steps := make([]refStep, 0, len(c.recs))
	var cur []string
	for {
		if !r.out.Scan() {
			return nil, fmt.Errorf("output ends early: %v", r.out.Err())
		}
		line := r.out.Text()
		switch f := strings.Fields(line); {
		case line == "end":
			if len(steps) != len(c.recs) {
				return nil, fmt.Errorf("%d steps for %d records", len(steps), len(c.recs))
			}
			return steps, nil
		case len(f) == 3 && f[0] == "--":
			var s refStep
			if _, err := fmt.Sscanf(line, "-- dropped=%d aggs=%d", &s.dropped, &s.aggs); err != nil {
				return nil, fmt.Errorf("bad mark %q: %v", line, err)
			}
			s.lines = cur
			steps = append(steps, s)
			cur = nil
		case len(f) == 5:
			if f[3] == "null" && !c.tombstones {
				continue // ours forwards no tombstones by default
			}
			cur = append(cur, line)
		default:
			return nil, fmt.Errorf("unexpected line %q", line)
		}
	}
}

// waitExit waits for the harness to exit (killing it after timeout).
func (r *kafkaRef) waitExit(timeout time.Duration) {
	r.waitOnce.Do(func() {
		done := make(chan error, 1)
		go func() { done <- r.cmd.Wait() }()
		select {
		case r.waitErr = <-done:
		case <-time.After(timeout):
			_ = r.cmd.Process.Kill()
			r.waitErr = <-done
		}
	})
}

// stderrAfterExit stops the harness and returns what it wrote to stderr.
func (r *kafkaRef) stderrAfterExit() string {
	_ = r.cmd.Process.Kill()
	r.waitExit(10 * time.Second)
	return r.stderr.String()
}

// stop ends the input, waits for the harness to exit and for the reader.
func (r *kafkaRef) stop() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.scripts)
		close(r.pending)
	}
	r.mu.Unlock()
	<-r.writerDone
	select {
	case <-r.readerDone:
	case <-time.After(30 * time.Second):
	}
	r.waitExit(30 * time.Second)
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
