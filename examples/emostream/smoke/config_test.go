package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	c, err := ParseFlags(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, smallEmojis, c.Emojis)
	require.Equal(t, 1000.0, c.Rate)
	require.Equal(t, "at-least-once", c.Mode())
	require.Empty(t, c.Brokers)

	c, err = ParseFlags([]string{"-large", "-exactly-once", "-brokers", "a:1, b:2"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, largeEmojis, c.Emojis)
	require.Equal(t, largeDuration, c.Duration)
	require.Equal(t, 16, c.Workers)
	require.Equal(t, "exactly-once", c.Mode())
	require.Equal(t, []string{"a:1", "b:2"}, c.Brokers)

	c, err = ParseFlags([]string{"-large", "-emojis", "2000", "-rate", "50"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 2000, c.Emojis)
	require.Equal(t, 50.0, c.Rate)
	require.Equal(t, largeDuration, c.Duration)

	for _, bad := range [][]string{
		{"-stops", "3"}, {"-batch", "0"}, {"-batch", "1001"}, {"-sigkills", "-1"}, {"-window", "1500us"},
		{"-scale", "0"}, {"extra"},
	} {
		_, err := ParseFlags(bad, io.Discard)
		require.Error(t, err, "%v", bad)
	}
	_, err = ParseFlags([]string{"-window", "3s", "-grace", "0"}, io.Discard)
	require.NoError(t, err)
}

func TestFindRepo(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module github.com/emostream/emostream\n\ngo 1.26\n"), 0o644))
	sub := filepath.Join(dir, "a", "b")
	require.NoError(t, os.MkdirAll(sub, 0o755))
	got, err := findRepo(sub)
	require.NoError(t, err)
	require.Equal(t, dir, got)
	_, err = findRepo(t.TempDir())
	require.Error(t, err)
}

func TestParseFlagsRebalance(t *testing.T) {
	c, err := ParseFlags([]string{"-scenario", "rebalance"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, ScenarioRebalance, c.Scenario)
	require.Equal(t, 400.0, c.Rate)
	require.Equal(t, 20, c.Batch)
	require.Equal(t, 4, c.Workers)
	require.Equal(t, 4, c.Partitions)
	require.Equal(t, 29194, c.KafkaPort)
	require.Equal(t, 29195, c.KafkaControllerPort)
	require.Equal(t, "/tmp/emostream-smoke-rebalance-kafka", c.KafkaStateDir)
	require.Equal(t, 400*600, c.Emojis) // a cap: the scenario stops the load itself
	require.Equal(t, 10*time.Second, c.Phase)

	c, err = ParseFlags([]string{"-scenario", "rebalance", "-rate", "300", "-partitions", "6", "-kafka-port", "40000", "-phase", "7s"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 300.0, c.Rate)
	require.Equal(t, 6, c.Partitions)
	require.Equal(t, 40000, c.KafkaPort)
	require.Equal(t, 300*600, c.Emojis)

	c, err = ParseFlags(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, ScenarioFaults, c.Scenario)
	require.Equal(t, 29192, c.KafkaPort)
	require.Equal(t, 6, c.Partitions)

	for _, bad := range [][]string{
		{"-scenario", "other"},
		{"-scenario", "rebalance", "-phase", "5s"}, // < window 2s + grace 2s + 2s
	} {
		_, err := ParseFlags(bad, io.Discard)
		require.Error(t, err, "%v", bad)
	}
}
