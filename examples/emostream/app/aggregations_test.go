package app_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/aggregation"
	"github.com/emostream/emostream/examples/emostream/app"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// mine is an aggregation of the user's own, offered through
// Options.Aggregations; only its name and title matter here.
type mine struct{}

func (mine) Name() string  { return "mine" }
func (mine) Title() string { return "Mine" }
func (mine) Build(aggregation.Input) (*stream.Stream[string, wire.Row], error) {
	return nil, nil
}

func TestAggregationsFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		err  string
	}{
		{name: "no count", args: []string{"aggregate", "--aggregations", "top3"}, err: `emostream: --aggregations: "top3" must include "count"`},
		{name: "unknown", args: []string{"run", "--aggregations", "count,top5"}, err: `unknown aggregation "top5" (want count, distinct-users, top3, per-region, mine, or all)`},
		{name: "from the environment", args: []string{"dashboard"}, env: map[string]string{"EMOSTREAM_AGGREGATIONS": "count,,top3"}, err: "--aggregations: empty name"},
		{name: "topic too long", args: []string{"run", "--aggregations", "all", "--output-topic", strings.Repeat("t", 240)}, err: "distinct-users's output topic"},
		{name: "topic taken", args: []string{"run", "--aggregations", "count,top3", "--dlq-topic", "topic2-top3"}, err: `top3's output topic "topic2-top3" is also --input-topic or --dlq-topic`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr kafkatest.LogBuffer
			code := app.Main(context.Background(), app.Options{Args: tc.args, Getenv: func(k string) string { return tc.env[k] },
				Stdout: &stdout, Stderr: &stderr, Aggregations: []aggregation.Aggregation{mine{}}})
			require.Equal(t, 2, code, "stderr: %s", stderr.String())
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			require.Len(t, lines, 1, "one-line reason: %q", stderr.String())
			require.Contains(t, lines[0], tc.err)
		})
	}
	var stdout kafkatest.LogBuffer
	require.Equal(t, 0, app.Main(context.Background(), app.Options{Args: []string{"-h"}, Getenv: noEnv, Stdout: &stdout, Stderr: &kafkatest.LogBuffer{}}))
	require.Contains(t, stdout.String(), "-aggregations")
}

// TestRunAggregations: `run --aggregations all` hands the aggregator the
// built-in aggregations and the user's, creates their output topics, and
// the dashboard shows a panel for each, filled from its topic.
func TestRunAggregations(t *testing.T) {
	out := kafkatest.UniqueName(t, "out")
	args := []string{"run", "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0", "--output-topic", out,
		"--partitions", "2", "--aggregations", "all"}
	called := make(chan app.AggregatorConfig, 1)
	fake := func(ctx context.Context, c app.AggregatorConfig) error {
		called <- c
		<-ctx.Done()
		return nil
	}
	stdout, _ := startMain(t, app.Options{Args: args, Aggregator: fake, Aggregations: []aggregation.Aggregation{mine{}}})
	base := waitURL(t, stdout)
	var acfg app.AggregatorConfig
	select {
	case acfg = <-called:
	case <-time.After(30 * time.Second):
		t.Fatal("aggregator not started")
	}
	var names []string
	for _, a := range acfg.Aggregations {
		names = append(names, a.Name())
	}
	require.Equal(t, []string{"distinct-users", "top3", "per-region", "mine"}, names)
	// per-region's users topic is created, compacted.
	admin, err := sarama.NewClusterAdminFromClient(mustClient(t, acfg.Brokers))
	require.NoError(t, err)
	res, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: "users", ConfigNames: []string{"cleanup.policy"}}}, sarama.DescribeConfigsOptions{})
	require.NoError(t, err)
	require.Len(t, res, 1)
	policy := ""
	for _, e := range res[0].Configs {
		if e.Name == "cleanup.policy" {
			policy = e.Value
		}
	}
	require.Equal(t, "compact", policy)

	client, err := sarama.NewClient(acfg.Brokers, kafkatest.SaramaConfig())
	require.NoError(t, err)
	defer client.Close()
	for _, n := range names {
		parts, err := client.Partitions(out + "-" + n)
		require.NoError(t, err, n)
		require.Len(t, parts, 2, n)
	}

	row := wire.Row{Aggregation: "top3", WindowStart: 2000, WindowEnd: 4000, Label: "🔥", Value: 7, Rank: 1}
	b, _ := row.Marshal()
	kafkatest.ProduceStrings(t, acfg.Brokers, out+"-top3", []kafkatest.KV{{Key: "2000", Value: string(b)}})
	type view struct {
		Name, Title, Topic string
		Rows               []wire.Row
	}
	var got []view
	require.Eventually(t, func() bool {
		_, body := get(t, base+"/api/aggregations")
		got = nil
		return json.Unmarshal([]byte(body), &got) == nil && len(got) == 4 && len(got[1].Rows) == 1
	}, 30*time.Second, 100*time.Millisecond, "panels")
	require.Equal(t, []view{
		{Name: "distinct-users", Title: "Distinct users per emoji", Topic: out + "-distinct-users", Rows: []wire.Row{}},
		{Name: "top3", Title: "Top 3 emojis per window", Topic: out + "-top3", Rows: []wire.Row{row}},
		{Name: "per-region", Title: "Reactions per region", Topic: out + "-per-region", Rows: []wire.Row{}},
		{Name: "mine", Title: "Mine", Topic: out + "-mine", Rows: []wire.Row{}},
	}, got)
}

func mustClient(t *testing.T, brokers []string) sarama.Client {
	t.Helper()
	c, err := sarama.NewClient(brokers, kafkatest.SaramaConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
