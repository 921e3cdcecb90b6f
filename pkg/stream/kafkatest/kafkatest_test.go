package kafkatest_test

import (
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

func TestBackendsRoundTrip(t *testing.T) {
	for _, b := range kafkatest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			brokers := b.Brokers(t)
			require.NotEmpty(t, brokers)

			topic := kafkatest.UniqueName(t, "roundtrip")
			kafkatest.CreateTopic(t, brokers, topic, 3)

			var recs []kafkatest.KV
			for i := range 30 {
				recs = append(recs, kafkatest.KV{
					Key:     fmt.Sprintf("key-%d", i%6),
					Value:   fmt.Sprintf("value-%d", i),
					Headers: map[string]string{"i": fmt.Sprint(i)},
				})
			}
			p2 := int32(2)
			recs = append(recs,
				kafkatest.KV{Key: "key-0", Tombstone: true},
				kafkatest.KV{Key: "pinned", Value: "to-2", Partition: &p2},
			)
			before := time.Now().Add(-time.Minute)
			kafkatest.ProduceStrings(t, brokers, topic, recs)

			msgs := kafkatest.ConsumeN(t, brokers, topic, len(recs), 30*time.Second)
			require.Len(t, msgs, len(recs))

			// Per key: one partition, production order kept.
			partOf := map[string]int32{}
			lastOf := map[string]kafkatest.Message{}
			for i, m := range msgs {
				require.Equal(t, topic, m.Topic)
				require.True(t, m.Timestamp.After(before), "timestamp %v", m.Timestamp)
				if i > 0 && msgs[i-1].Partition == m.Partition {
					require.Greater(t, m.Offset, msgs[i-1].Offset)
				}
				if p, ok := partOf[m.Key]; ok {
					require.Equal(t, p, m.Partition, "key %s", m.Key)
				}
				partOf[m.Key] = m.Partition
				if prev, ok := lastOf[m.Key]; ok && !m.Tombstone && m.Key != "pinned" {
					require.Less(t, valueIndex(t, prev), valueIndex(t, m))
				}
				lastOf[m.Key] = m
			}
			require.True(t, lastOf["key-0"].Tombstone)
			require.Equal(t, "to-2", lastOf["pinned"].Value)
			require.Equal(t, int32(2), lastOf["pinned"].Partition)
			require.Equal(t, "29", lastOf["key-5"].Headers["i"])

			// Asking for more than exists fails; checked with a fake TB.
			ft := &fakeTB{TB: t}
			ft.run(func() { kafkatest.ConsumeN(ft, brokers, topic, len(recs)+1, 500*time.Millisecond) })
			require.True(t, ft.failed)
			require.Contains(t, ft.msg, fmt.Sprintf("consumed %d of %d", len(recs), len(recs)+1))
		})
	}
}

func valueIndex(t *testing.T, m kafkatest.Message) int {
	t.Helper()
	var i int
	_, err := fmt.Sscanf(m.Value, "value-%d", &i)
	require.NoError(t, err)
	return i
}

func TestBackendsCompactedTopicConfig(t *testing.T) {
	for _, b := range kafkatest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			brokers := b.Brokers(t)
			topic := kafkatest.UniqueName(t, "changelog")
			kafkatest.CreateTopicWithConfig(t, brokers, topic, 2, map[string]string{"cleanup.policy": "compact"})

			require.Equal(t, "compact", kafkatest.TopicConfig(t, brokers, topic)["cleanup.policy"])

			// Creating it twice fails the test.
			ft := &fakeTB{TB: t}
			ft.run(func() { kafkatest.CreateTopic(ft, brokers, topic, 2) })
			require.True(t, ft.failed)
		})
	}
}

func TestUniqueName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-zA-Z0-9-]+$`)
	seen := map[string]bool{}
	for range 100 {
		n := kafkatest.UniqueName(t, "my_app.v1 /x")
		require.Regexp(t, valid, n)
		require.LessOrEqual(t, len(n), 120)
		require.True(t, strings.HasPrefix(n, "my-app-v1-x-TestUniqueName-"), n)
		require.False(t, seen[n], "duplicate %s", n)
		seen[n] = true
	}
	t.Run("long sub/test name "+strings.Repeat("z", 200), func(t *testing.T) {
		n := kafkatest.UniqueName(t, strings.Repeat("p", 300))
		require.Regexp(t, valid, n)
		require.LessOrEqual(t, len(n), 120)
	})
}

func TestRealBrokersEnv(t *testing.T) {
	t.Run("unset outside CI skips loudly", func(t *testing.T) {
		t.Setenv("KAFKA_BROKERS", "")
		t.Setenv("CI", "")
		ft := &fakeTB{TB: t}
		ft.run(func() { kafkatest.RealBrokers(ft) })
		require.True(t, ft.skipped)
		require.False(t, ft.failed)
		require.Contains(t, ft.msg, "SKIPPED")
		require.Contains(t, ft.msg, "make test")
		require.Contains(t, ft.msg, "make kafka-up")
	})
	t.Run("unset in CI fails", func(t *testing.T) {
		t.Setenv("KAFKA_BROKERS", " ")
		t.Setenv("CI", "true")
		ft := &fakeTB{TB: t}
		ft.run(func() { kafkatest.RealBrokers(ft) })
		require.True(t, ft.failed)
		require.Contains(t, ft.msg, "KAFKA_BROKERS not set: CI requires a real Kafka broker")
	})
	t.Run("unreachable fails", func(t *testing.T) {
		t.Setenv("KAFKA_BROKERS", "127.0.0.1:1")
		ft := &fakeTB{TB: t}
		ft.run(func() { kafkatest.RealBrokers(ft) })
		require.True(t, ft.failed)
		require.Contains(t, ft.msg, "unreachable")
	})
	t.Run("list is split and trimmed", func(t *testing.T) {
		b := kafkatest.EmbeddedBrokers(t)
		t.Setenv("KAFKA_BROKERS", " "+b[0]+" , 127.0.0.1:2,")
		require.Equal(t, []string{b[0], "127.0.0.1:2"}, kafkatest.RealBrokers(t))
	})
}

// fakeTB records Fatal/Skip calls instead of ending the test. Helpers run
// inside run, whose goroutine is ended by Fatal and Skip like the testing
// package does.
type fakeTB struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (f *fakeTB) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatal(args ...any) { f.failed = true; f.msg = fmt.Sprint(args...); runtime.Goexit() }

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Skip(args ...any) { f.skipped = true; f.msg = fmt.Sprint(args...); runtime.Goexit() }

func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = true
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
