package embedded_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/emostream/emostream/pkg/stream/embedded"
)

// kafkaToolsScript fetches Kafka 4.4's tool jars from Maven Central (once,
// cached) and prints their classpath.
const kafkaToolsScript = "../../../scripts/kafka-tools.sh"

// toolsClasspath returns the classpath of Apache Kafka's command-line tools,
// skipping the test (failing it under CI=true) when java or the jars are
// not available.
func toolsClasspath(t *testing.T) string {
	t.Helper()
	unavailable := func(msg string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if _, err := exec.LookPath("java"); err != nil {
		unavailable("!!! java not found: cannot run Kafka's own tools against the embedded broker (install a JDK 17+ and Maven)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", kafkaToolsScript, "classpath")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		unavailable(fmt.Sprintf("!!! %s classpath failed (%v): cannot run Kafka's own tools: %s", kafkaToolsScript, err, stderr.String()))
	}
	cp := strings.TrimSpace(string(out))
	require.NotEmpty(t, cp)
	return cp
}

// runTool runs one of Kafka's tool classes with args against the broker and
// returns its stdout; it fails the test when the tool exits non-zero or
// prints a Java exception.
func runTool(t *testing.T, cp, class string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	jvm := []string{"-Xmx192m", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-Djava.awt.headless=true", "-cp", cp, class}
	cmd := exec.CommandContext(ctx, "java", append(jvm, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s %s: %v in %s\nstdout:\n%s\nstderr:\n%s", class, strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond), stdout.String(), stderr.String())
	require.NoError(t, err, "%s failed; stderr:\n%s", class, stderr.String())
	for _, s := range []string{stdout.String(), stderr.String()} {
		require.NotContains(t, s, "Exception", "%s printed an exception", class)
	}
	return stdout.String()
}

// TestKafkaToolsAgainstEmbeddedBroker runs Apache Kafka 4.4's own
// command-line tools (kafka-topics, kafka-consumer-groups,
// kafka-console-consumer, GetOffsetShell) against the embedded broker and
// checks what they print. Before compat.go, kafka-topics --describe,
// kafka-consumer-groups --describe and GetOffsetShell died with a
// NullPointerException and kafka-consumer-groups --list printed nothing.
func TestKafkaToolsAgainstEmbeddedBroker(t *testing.T) {
	cp := toolsClasspath(t)

	const (
		topic      = "tools-topic"
		group      = "tools-group"
		partitions = 3
		perPart    = 10
	)
	b := start(t, embedded.DefaultPartitions(partitions))
	bootstrap := strings.Join(b.Addrs(), ",")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// perPart records in each partition, values "p<partition>-<i>".
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.AllowAutoTopicCreation(),
		kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer prod.Close()
	var want []string
	for p := int32(0); p < partitions; p++ {
		for i := range perPart {
			v := fmt.Sprintf("p%d-%d", p, i)
			want = append(want, v)
			require.NoError(t, prod.ProduceSync(ctx, &kgo.Record{Partition: p, Key: []byte("k"), Value: []byte(v)}).FirstErr())
		}
	}

	// An active group member that committed 10 on partition 0 (lag 0), 4
	// on partition 1 (lag 6) and nothing on partition 2 (lag unknown).
	cons, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(), kgo.ClientID("tools-test-member"))
	require.NoError(t, err)
	defer cons.Close()
	for fetched := 0; fetched == 0; {
		fs := cons.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "the group member never got records")
		fetched = fs.NumRecords()
	}
	committed := map[int32]int64{0: perPart, 1: 4}
	commit := map[string]map[int32]kgo.EpochOffset{topic: {}}
	for p, o := range committed {
		commit[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	var commitErr error
	cons.CommitOffsetsSync(ctx, commit, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		commitErr = err
		for _, tp := range resp.Topics {
			for _, pp := range tp.Partitions {
				if pp.ErrorCode != 0 && commitErr == nil {
					commitErr = fmt.Errorf("commit of %s/%d: error code %d", tp.Topic, pp.Partition, pp.ErrorCode)
				}
			}
		}
	})
	require.NoError(t, commitErr)

	// The tools run in parallel: each is a JVM start of ~1-2 s.
	t.Run("tools", func(t *testing.T) {
		t.Run("kafka-topics --describe", func(t *testing.T) {
			t.Parallel()
			out := runTool(t, cp, "org.apache.kafka.tools.TopicCommand",
				"--bootstrap-server", bootstrap, "--describe", "--topic", topic)
			assert.Regexp(t, `Topic: `+topic+`\s+TopicId: \S+\s+PartitionCount: 3\s+ReplicationFactor: 1`, out)
			for p := range partitions {
				assert.Regexp(t, fmt.Sprintf(`Topic: %s\s+Partition: %d\s+Leader: 0\s+Replicas: 0\s+Isr: 0`, topic, p), out)
			}
		})
		t.Run("kafka-topics --describe (all topics)", func(t *testing.T) {
			t.Parallel()
			out := runTool(t, cp, "org.apache.kafka.tools.TopicCommand",
				"--bootstrap-server", bootstrap, "--describe")
			assert.Contains(t, out, "PartitionCount: 3")
			assert.Contains(t, out, "Topic: "+topic)
		})
		t.Run("kafka-consumer-groups --list", func(t *testing.T) {
			t.Parallel()
			out := runTool(t, cp, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
				"--bootstrap-server", bootstrap, "--list")
			assert.Contains(t, strings.Fields(out), group)
		})
		t.Run("kafka-consumer-groups --describe", func(t *testing.T) {
			t.Parallel()
			out := runTool(t, cp, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
				"--bootstrap-server", bootstrap, "--describe", "--group", group)
			rows := groupRows(t, out)
			require.Len(t, rows, partitions, "one row per partition:\n%s", out)
			for p := int32(0); p < partitions; p++ {
				r, ok := rows[p]
				require.True(t, ok, "no row for partition %d:\n%s", p, out)
				assert.Equal(t, group, r["GROUP"])
				assert.Equal(t, strconv.Itoa(perPart), r["LOG-END-OFFSET"], "partition %d", p)
				assert.Equal(t, "tools-test-member", r["CLIENT-ID"], "partition %d", p)
				if off, ok := committed[p]; ok {
					assert.Equal(t, strconv.FormatInt(off, 10), r["CURRENT-OFFSET"], "partition %d", p)
					assert.Equal(t, strconv.FormatInt(perPart-off, 10), r["LAG"], "partition %d", p)
				} else {
					assert.Equal(t, "-", r["CURRENT-OFFSET"], "partition %d", p)
					assert.Equal(t, "-", r["LAG"], "partition %d", p)
				}
			}
		})
		t.Run("kafka-console-consumer", func(t *testing.T) {
			t.Parallel()
			n := partitions * perPart
			out := runTool(t, cp, "org.apache.kafka.tools.consumer.ConsoleConsumer",
				"--bootstrap-server", bootstrap, "--topic", topic, "--from-beginning",
				"--max-messages", strconv.Itoa(n), "--timeout-ms", "30000")
			got := strings.Fields(out)
			slices.Sort(got)
			exp := slices.Clone(want)
			slices.Sort(exp)
			assert.Equal(t, exp, got)
		})
		t.Run("GetOffsetShell", func(t *testing.T) {
			t.Parallel()
			latest := runTool(t, cp, "org.apache.kafka.tools.GetOffsetShell",
				"--bootstrap-server", bootstrap, "--topic", topic)
			earliest := runTool(t, cp, "org.apache.kafka.tools.GetOffsetShell",
				"--bootstrap-server", bootstrap, "--topic", topic, "--time", "-2")
			var wantLatest, wantEarliest []string
			for p := range partitions {
				wantLatest = append(wantLatest, fmt.Sprintf("%s:%d:%d", topic, p, perPart))
				wantEarliest = append(wantEarliest, fmt.Sprintf("%s:%d:0", topic, p))
			}
			assert.Equal(t, wantLatest, strings.Fields(latest))
			assert.Equal(t, wantEarliest, strings.Fields(earliest))
		})
	})
}

// groupRows parses kafka-consumer-groups --describe output into one map of
// column name to value per partition.
func groupRows(t *testing.T, out string) map[int32]map[string]string {
	t.Helper()
	rows := map[int32]map[string]string{}
	var header []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0:
		case f[0] == "GROUP":
			header = f
		case header != nil && len(f) == len(header):
			r := map[string]string{}
			for i, h := range header {
				r[h] = f[i]
			}
			p, err := strconv.ParseInt(r["PARTITION"], 10, 32)
			require.NoError(t, err, "line %q", sc.Text())
			rows[int32(p)] = r
		}
	}
	require.NotNil(t, header, "no header line in:\n%s", out)
	return rows
}
