package stream_test

import (
	"bufio"
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
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// TestTablesMatchKafkaStreams runs seeded random inputs through our tables
// and joins and through the real Kafka Streams 4.4.0 (the harness in
// testdata/kstreams-ref, under TopologyTestDriver, caching off), and
// compares, after every input record, the records written to the output
// topic: keys, values, tombstones, timestamps and order.
//
// Each op (see refOps) gets TABLE_REF_CASES random cases (default 500) of
// 5 to 40 records on one partition: few keys (so updates, deletions and
// regroupings collide), values 0-9, about one in six a tombstone, out-of-order
// timestamps. Every run draws a new seed, logged at the start and in every
// failure; TABLE_REF_SEED=<seed> runs the same cases again, and
// TABLE_REF_OPS=op1,op2 only those ops' cases. The harness can
// be run by hand (input format in its Main.java):
//
//	cd pkg/stream/testdata/kstreams-ref && mvn -q package
//	java -cp target/kstreams-table-ref-1.0.0.jar:$(cat target/classpath.txt) kstreamsref.Main < case.txt
//
// It needs java and mvn (and Maven Central, the first time); without them the
// test is skipped, except under CI=true where it fails.
func TestTablesMatchKafkaStreams(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TABLE_REF_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "TABLE_REF_SEED")
	}
	perOp := 500
	if s := os.Getenv("TABLE_REF_CASES"); s != "" {
		var err error
		perOp, err = strconv.Atoi(s)
		require.NoError(t, err, "TABLE_REF_CASES")
	}
	t.Logf("seed %d: TABLE_REF_SEED=%d reproduces this run", seed, seed)
	requireJava(t)
	cases := genTableRefCases(seed, perOp)
	ops := refOps
	if s := os.Getenv("TABLE_REF_OPS"); s != "" {
		// Only these ops (comma-separated), with the cases the seed gives
		// them when all run.
		ops = strings.Split(s, ",")
		cases = slices.DeleteFunc(cases, func(c tableRefCase) bool { return !slices.Contains(ops, c.op) })
		require.NotEmpty(t, cases, "TABLE_REF_OPS=%s names no op of refOps", s)
	}
	// Ours run while Kafka Streams does, in its own goroutine.
	type result struct {
		steps [][]string
		err   error
	}
	ours := make([]result, len(cases))
	oursDone := make(chan struct{})
	go func() {
		defer close(oursDone)
		for i, c := range cases {
			ours[i].steps, ours[i].err = runOursTableRef(c)
		}
	}()
	want := runTableRef(t, cases)
	<-oursDone
	failures := map[string]int{}
	for i, c := range cases {
		got, err := ours[i].steps, ours[i].err
		if err != nil {
			failures[c.op]++
			if failures[c.op] <= 3 {
				t.Errorf("seed=%d case %s: ours failed: %v\n%s", seed, c.name, err, c.script())
			}
			continue
		}
		if step, why := firstTableRefDiff(got, want[i]); step >= 0 {
			failures[c.op]++
			if failures[c.op] <= 3 {
				t.Errorf("seed=%d case %s differs from Kafka Streams 4.4.0 after record %d (%s): %s\n%s",
					seed, c.name, step, c.recs[step], why, describeTableRef(c, want[i], got))
			}
		}
	}
	for _, op := range ops {
		t.Logf("%-22s %d cases, %d differ from Kafka Streams", op, perOp, failures[op])
	}
	if len(failures) > 0 {
		t.Logf("seed %d (TABLE_REF_SEED=%d go test -run TestTablesMatchKafkaStreams ./pkg/stream/ reproduces)", seed, seed)
	}
}

// refOps are the topologies compared (Main.java builds the same).
var refOps = []string{
	"source", "filter", "filternot", "mapvalues", "filter-mapvalues",
	"count-by-value", "count-by-key", "sum-by-value", "sum-by-key",
	"reduce-by-value", "reduce-by-key", "filter-count-by-value", "mapvalues-sum-by-key",
	"st-inner", "st-left", "tt-inner", "tt-left", "tt-outer",
	"ss-inner", "ss-left", "ss-outer", "sg-inner", "sg-left",
	"suppress", "suppress-count-by-value",
	"fk-inner", "fk-left", "fk-filter-left",
	"vsource", "st-inner-versioned", "st-left-versioned", "st-left-versioned-filter",
}

// versionedOp tells whether op reads a versioned table (the cases then
// draw a history retention, a segment interval and a join grace period).
func versionedOp(op string) bool {
	return strings.HasPrefix(op, "vsource") || strings.Contains(op, "-versioned")
}

// streamSide tells whether topic is read as a stream by op (its records
// then never have null values: a Stream has none).
func streamSide(op, topic string) bool {
	return topic == "left" && (strings.HasPrefix(op, "st-") || strings.HasPrefix(op, "sg-")) || strings.HasPrefix(op, "ss-")
}

// refJoin is Main.java's JOIN: left * 1000 + right, a missing side as -1
// (left) or 999 (right).
func refJoin(l, r *int64) int64 {
	lv, rv := int64(-1), int64(999)
	if l != nil {
		lv = *l
	}
	if r != nil {
		rv = *r
	}
	return lv*1000 + rv
}

// refForeignKey is Main.java's FOREIGN_KEY: the key's first letter and the
// value mod 3, none for the value 9.
func refForeignKey(k string, v int64) (string, bool) {
	return k[:1] + strconv.FormatInt(v%3, 10), v != 9
}

type tableRefRec struct {
	topic, key string
	value      *int64
	ts         int64
}

func (r tableRefRec) String() string {
	v := "null"
	if r.value != nil {
		v = strconv.FormatInt(*r.value, 10)
	}
	return fmt.Sprintf("%s %s %s %d", r.topic, r.key, v, r.ts)
}

type tableRefCase struct {
	name, op           string
	diff, after, grace int64 // stream-stream joins: before, after, grace (ms)
	limit, maxRecords  int64 // suppressions: time limit (ms), buffer bound (0: none)
	// Versioned tables: history retention and segment interval (ms, 0:
	// Kafka Streams' default; ours has no segments); grace holds the
	// stream–table join's grace period (-1: none).
	retention, seg int64
	recs           []tableRefRec
}

func (c tableRefCase) script() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "case %s\nconfig op=%s diff=%d after=%d grace=%d limit=%d maxrec=%d retention=%d seg=%d\n", c.name, c.op, c.diff, c.after, c.grace, c.limit, c.maxRecords, c.retention, c.seg)
	for _, r := range c.recs {
		fmt.Fprintf(&sb, "pipe %s\n", r)
	}
	sb.WriteString("end\n")
	return sb.String()
}

func genTableRefCases(seed uint64, perOp int) []tableRefCase {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	keys := []string{"a1", "a2", "a3", "b1", "b2", "c1"}
	var cases []tableRefCase
	for _, op := range refOps {
		for i := range perOp {
			c := tableRefCase{name: fmt.Sprintf("%s/%d", op, i), op: op}
			if strings.HasPrefix(op, "ss-") {
				c.diff = []int64{0, 3, 10, 25}[rng.IntN(4)]
				c.after = c.diff
				if rng.IntN(2) == 0 {
					c.after = []int64{0, 3, 10, 25}[rng.IntN(4)]
				}
				c.grace = []int64{0, 4, 15}[rng.IntN(3)]
			}
			if strings.HasPrefix(op, "suppress") {
				c.limit = []int64{0, 5, 20, 60}[rng.IntN(4)]
				c.maxRecords = []int64{0, 0, 1, 2}[rng.IntN(4)]
			}
			if versionedOp(op) {
				c.retention = []int64{0, 2, 8, 25, 1000}[rng.IntN(5)]
				c.seg = []int64{0, 1, 3, 10}[rng.IntN(4)]
				// Kafka Streams wants a grace period within the retention.
				graces := slices.DeleteFunc([]int64{-1, 0, 3, 10, 30}, func(g int64) bool { return g > c.retention })
				c.grace = graces[rng.IntN(len(graces))]
			}
			nk := 1 + rng.IntN(len(keys))
			ts := int64(rng.IntN(50))
			for range 5 + rng.IntN(36) {
				r := tableRefRec{topic: "left", key: keys[rng.IntN(nk)]}
				if strings.HasPrefix(op, "st-") || strings.HasPrefix(op, "tt-") || strings.HasPrefix(op, "ss-") || strings.HasPrefix(op, "sg-") || strings.HasPrefix(op, "fk-") {
					if rng.IntN(2) == 0 {
						r.topic = "right"
					}
				}
				if strings.HasPrefix(op, "fk-") && r.topic == "right" {
					// A foreign key refForeignKey can extract: a left key's
					// first letter and a digit 0-2.
					r.key = keys[rng.IntN(nk)][:1] + strconv.Itoa(rng.IntN(3))
				}
				if rng.IntN(6) != 0 || streamSide(op, r.topic) {
					v := int64(rng.IntN(10))
					r.value = &v
				}
				// Mostly forward in time, sometimes back (out of order).
				ts += int64(rng.IntN(20)) - 6
				r.ts = max(ts, 0)
				if versionedOp(op) && rng.IntN(3) == 0 {
					// Further back, alone: as-of lookups and history retention.
					r.ts = max(ts-int64(rng.IntN(40)), 0)
				}
				c.recs = append(c.recs, r)
			}
			cases = append(cases, c)
		}
	}
	return cases
}

// runOursTableRef runs c through package stream and returns, per input
// record, the output lines "KEY VALUE TS".
func runOursTableRef(c tableRefCase) (steps [][]string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	b := stream.NewBuilder()
	str, i64 := stream.String(), stream.Int64()
	grouped := stream.Grouped[string, int64]{KeySerde: str, ValueSerde: i64}
	left := func() *stream.Table[string, int64] { return stream.TableSource(b, "left", str, i64) }
	even := func(_ string, v int64) bool { return v%2 == 0 }
	mapv := func(k string, v int64) int64 { return v*10 + int64(len(k)) }
	byValue := func(t *stream.Table[string, int64]) *stream.GroupedTable[string, int64] {
		return stream.GroupTableBy(t, func(_ string, v int64) (string, int64) { return "g" + strconv.FormatInt(v%3, 10), v }, grouped)
	}
	byKey := func(t *stream.Table[string, int64]) *stream.GroupedTable[string, int64] {
		return stream.GroupTableBy(t, func(k string, v int64) (string, int64) { return k[:1], v }, grouped)
	}
	add := func(_ string, v, a int64) int64 { return a + v }
	sub := func(_ string, v, a int64) int64 { return a - v }
	var m stream.Materialized[string, int64]
	var out *stream.Table[string, int64]
	var joined *stream.Stream[string, int64]
	right := func() *stream.Table[string, int64] { return stream.TableSource(b, "right", str, i64) }
	switch c.op {
	case "st-inner":
		joined = stream.JoinTable(stream.Source(b, "left", str, i64), right(), func(l, r int64) int64 { return refJoin(&l, &r) })
	case "st-left":
		joined = stream.LeftJoinTable(stream.Source(b, "left", str, i64), right(), func(l int64, r *int64) int64 { return refJoin(&l, r) })
	case "vsource":
		out = stream.VersionedTableSource(b, "left", str, i64, time.Duration(c.retention)*time.Millisecond)
	case "st-inner-versioned", "st-left-versioned", "st-left-versioned-filter":
		vt := stream.VersionedTableSource(b, "right", str, i64, time.Duration(c.retention)*time.Millisecond)
		if c.op == "st-left-versioned-filter" {
			vt = vt.Filter(func(_ string, v int64) bool { return v%3 != 0 })
		}
		j := stream.Joined[string, int64]{Grace: time.Duration(max(c.grace, 0)) * time.Millisecond}
		if c.op == "st-inner-versioned" {
			joined = stream.JoinTable(stream.Source(b, "left", str, i64), vt, func(l, r int64) int64 { return refJoin(&l, &r) }, j)
		} else {
			joined = stream.LeftJoinTable(stream.Source(b, "left", str, i64), vt, func(l int64, r *int64) int64 { return refJoin(&l, r) }, j)
		}
	case "suppress", "suppress-count-by-value":
		sup := left().Suppress(stream.Suppressed[string, int64]{TimeLimit: time.Duration(c.limit) * time.Millisecond, MaxRecords: int(c.maxRecords)})
		if c.op == "suppress" {
			out = sup
		} else {
			out = stream.CountTable(byValue(sup), m)
		}
	case "sg-inner", "sg-left":
		// The global table is looked up by the key's first letter and the
		// value mod 3 + 1 (Main.java's GLOBAL_KEY).
		g := stream.GlobalTableSource(b, "right", str, i64)
		gk := func(k string, v int64) string { return k[:1] + strconv.FormatInt(v%3+1, 10) }
		if c.op == "sg-inner" {
			joined = stream.JoinGlobal(stream.Source(b, "left", str, i64), g, gk, func(l, r int64) int64 { return refJoin(&l, &r) })
		} else {
			joined = stream.LeftJoinGlobal(stream.Source(b, "left", str, i64), g, gk, func(l int64, r *int64) int64 { return refJoin(&l, r) })
		}
	case "fk-inner":
		out = stream.JoinTablesOnForeignKey(left(), right(), refForeignKey, func(l, r int64) int64 { return refJoin(&l, &r) })
	case "fk-left":
		out = stream.LeftJoinTablesOnForeignKey(left(), right(), refForeignKey, func(l int64, r *int64) int64 { return refJoin(&l, r) })
	case "fk-filter-left":
		out = stream.LeftJoinTablesOnForeignKey(left().Filter(func(_ string, v int64) bool { return v%4 != 3 }), right().Filter(even),
			refForeignKey, func(l int64, r *int64) int64 { return refJoin(&l, r) })
	case "tt-inner":
		out = stream.JoinTables(left(), right(), func(l, r int64) int64 { return refJoin(&l, &r) })
	case "tt-left":
		out = stream.LeftJoinTables(left(), right(), func(l int64, r *int64) int64 { return refJoin(&l, r) })
	case "tt-outer":
		out = stream.OuterJoinTables(left(), right(), refJoin)
	case "ss-inner", "ss-left", "ss-outer":
		l, r := stream.Source(b, "left", str, i64), stream.Source(b, "right", str, i64)
		w := stream.JoinTimeDifferenceAndGrace(time.Duration(c.diff)*time.Millisecond, time.Duration(c.grace)*time.Millisecond)
		w.After = time.Duration(c.after) * time.Millisecond
		sj := stream.StreamJoined[string, int64, int64]{}
		switch c.op {
		case "ss-inner":
			joined = stream.JoinStreams(l, r, func(l, r int64) int64 { return refJoin(&l, &r) }, w, sj)
		case "ss-left":
			joined = stream.LeftJoinStreams(l, r, func(l int64, r *int64) int64 { return refJoin(&l, r) }, w, sj)
		default:
			joined = stream.OuterJoinStreams(l, r, refJoin, w, sj)
		}
	case "source":
		out = left()
	case "filter":
		out = left().Filter(even)
	case "filternot":
		out = left().FilterNot(even)
	case "mapvalues":
		out = stream.MapTableValues(left(), mapv)
	case "filter-mapvalues":
		out = stream.MapTableValues(left().Filter(func(_ string, v int64) bool { return v%3 != 0 }), mapv)
	case "count-by-value":
		out = stream.CountTable(byValue(left()), m)
	case "count-by-key":
		out = stream.CountTable(byKey(left()), m)
	case "sum-by-value":
		out = stream.AggregateTable(byValue(left()), func() int64 { return 0 }, add, sub, m)
	case "sum-by-key":
		out = stream.AggregateTable(byKey(left()), func() int64 { return 0 }, add, sub, m)
	case "reduce-by-value":
		out = stream.ReduceTable(byValue(left()), func(a, v int64) int64 { return a + v }, func(a, v int64) int64 { return a - v }, m)
	case "reduce-by-key":
		out = stream.ReduceTable(byKey(left()), func(a, v int64) int64 { return a + v }, func(a, v int64) int64 { return a - v }, m)
	case "filter-count-by-value":
		out = stream.CountTable(byValue(left().Filter(even)), m)
	case "mapvalues-sum-by-key":
		out = stream.AggregateTable(byKey(stream.MapTableValues(left(), mapv)), func() int64 { return 0 }, add, sub, m)
	default:
		return nil, fmt.Errorf("unknown op %s", c.op)
	}
	if joined != nil {
		joined.To("out", str, i64)
	} else {
		stream.ToStreamWithTombstones(out).To("out", str, stream.TombstoneSerde(i64))
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
	ins := map[string]*streamtest.InputTopic[string, *int64]{
		"left":  streamtest.NewInputTopic(d, "left", str, stream.TombstoneSerde(i64)),
		"right": streamtest.NewInputTopic(d, "right", str, stream.TombstoneSerde(i64)),
	}
	res := streamtest.NewOutputTopic(d, "out", str, stream.TombstoneSerde(i64))
	for _, r := range c.recs {
		if err := ins[r.topic].PipeAt(r.key, r.value, time.UnixMilli(r.ts)); err != nil {
			return steps, err
		}
		recs, err := res.ReadRecords()
		if err != nil {
			return steps, err
		}
		lines := []string{}
		for _, o := range recs {
			v := "null"
			if o.Value != nil {
				v = strconv.FormatInt(*o.Value, 10)
			}
			lines = append(lines, fmt.Sprintf("%s %s %d", o.Key, v, o.Timestamp.UnixMilli()))
		}
		steps = append(steps, lines)
	}
	return steps, nil
}

func firstTableRefDiff(got, want [][]string) (int, string) {
	for i := range want {
		if i >= len(got) {
			return i, "ours stopped early"
		}
		if !slices.Equal(got[i], want[i]) {
			return i, fmt.Sprintf("ours %q, Kafka Streams %q", got[i], want[i])
		}
	}
	return -1, ""
}

func describeTableRef(c tableRefCase, want, got [][]string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "  op=%s diff=%d after=%d grace=%d limit=%d maxrec=%d retention=%d seg=%d\n", c.op, c.diff, c.after, c.grace, c.limit, c.maxRecords, c.retention, c.seg)
	for i, r := range c.recs {
		mark := "  "
		if i < len(got) && !slices.Equal(got[i], want[i]) {
			mark = "!!"
		}
		fmt.Fprintf(&sb, "%s pipe %-22s kafka %q\n%s %-27s ours  %q\n", mark, r, want[i], mark, "", at(got, i))
	}
	return sb.String()
}

func at(s [][]string, i int) []string {
	if i < len(s) {
		return s[i]
	}
	return nil
}

const tableRefDir = "testdata/kstreams-ref"

// requireJava skips the test (fails it under CI=true) without java and mvn.
func requireJava(t *testing.T) {
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
}

// runTableRef builds the harness if needed, feeds it every case and returns
// Kafka Streams' output lines per case and input record.
func runTableRef(t *testing.T, cases []tableRefCase) [][][]string {
	t.Helper()
	dir, err := filepath.Abs(tableRefDir)
	require.NoError(t, err)
	jar := filepath.Join(dir, "target", "kstreams-table-ref-1.0.0.jar")
	cpFile := filepath.Join(dir, "target", "classpath.txt")
	if !tableRefUpToDate(dir, jar, cpFile) {
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
	// C1 only: the cases are short, the C2 compiler would cost more CPU than
	// it saves.
	cmd := exec.CommandContext(t.Context(), "java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-cp", jar+string(os.PathListSeparator)+strings.TrimSpace(string(cp)), "kstreamsref.Main")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() { // the harness writes while it reads: feed it concurrently
		defer stdin.Close()
		for _, c := range cases {
			if _, err := io.WriteString(stdin, c.script()); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	out := make([][][]string, len(cases))
	fail := func(format string, args ...any) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("Kafka Streams harness: "+format+"\nstderr:\n%s", append(args, stderr.String())...)
	}
	for i, c := range cases {
		if !sc.Scan() || sc.Text() != "case "+c.name {
			fail("case %s: want its header, got %q (%v)", c.name, sc.Text(), sc.Err())
		}
		var cur []string
		for {
			if !sc.Scan() {
				fail("case %s: output ends early (%v)", c.name, sc.Err())
			}
			line := sc.Text()
			if line == "end" {
				break
			}
			if line == "--" {
				out[i] = append(out[i], append([]string{}, cur...))
				cur = cur[:0]
				continue
			}
			cur = append(cur, line)
		}
		if len(out[i]) != len(c.recs) {
			fail("case %s: %d steps for %d records", c.name, len(out[i]), len(c.recs))
		}
	}
	require.NoError(t, cmd.Wait(), "stderr:\n%s", stderr.String())
	t.Logf("Kafka Streams ran %d cases in %v", len(cases), time.Since(start).Round(time.Millisecond))
	return out
}

// tableRefUpToDate: the jar is newer than the harness sources and every jar
// on the recorded classpath is still there.
func tableRefUpToDate(dir, jar, cpFile string) bool {
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
	if filepath.WalkDir(filepath.Join(dir, "pom.xml"), check) != nil || filepath.WalkDir(filepath.Join(dir, "src"), check) != nil {
		return false
	}
	return !newer
}
