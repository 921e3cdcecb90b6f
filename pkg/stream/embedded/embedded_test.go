package embedded_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream/embedded"
)

// newConfig returns a fresh sarama config per call, as the package docs ask
// of clients talking to the embedded broker.
func newConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_0_0_0
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Producer.Return.Successes = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.Return.Errors = true
	return cfg
}

func start(t *testing.T, opts ...embedded.Opt) *embedded.Broker {
	t.Helper()
	b, err := embedded.Start(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b
}

func produce(t *testing.T, addrs []string, topic string, n int, prefix string) {
	t.Helper()
	p, err := sarama.NewSyncProducer(addrs, newConfig())
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{
			Topic:   topic,
			Key:     sarama.StringEncoder(fmt.Sprintf("k%d", i%5)),
			Value:   sarama.StringEncoder(fmt.Sprintf("%s%d", prefix, i)),
			Headers: []sarama.RecordHeader{{Key: []byte("h"), Value: []byte("v")}},
		}
	}
	require.NoError(t, p.SendMessages(msgs))
}

// readAll reads n records from every partition of topic, from the oldest
// offset, and returns the values by partition.
func readAll(t *testing.T, addrs []string, topic string, n int) map[int32][]string {
	t.Helper()
	c, err := sarama.NewConsumer(addrs, newConfig())
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	parts, err := c.Partitions(topic)
	require.NoError(t, err)

	got := map[int32][]string{}
	total := 0
	deadline := time.After(10 * time.Second)
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		require.NoError(t, err)
		defer pc.AsyncClose()
		hwm := pc.HighWaterMarkOffset()
		for int64(len(got[p])) < hwm {
			select {
			case m := <-pc.Messages():
				require.Equal(t, []byte("v"), m.Headers[0].Value)
				got[p] = append(got[p], string(m.Value))
				total++
			case err := <-pc.Errors():
				require.NoError(t, err)
			case <-deadline:
				t.Fatalf("timed out reading partition %d: %d of %d", p, len(got[p]), hwm)
			}
		}
	}
	require.Equal(t, n, total)
	return got
}

func TestProduceConsumeAutoCreate(t *testing.T) {
	b := start(t)
	addrs := b.Addrs()
	require.Len(t, addrs, 1)
	host, _, err := net.SplitHostPort(addrs[0])
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)

	// No CreateTopics: the producer's metadata request creates the topic.
	produce(t, addrs, "auto-created", 20, "v")
	got := readAll(t, addrs, "auto-created", 20)
	require.Len(t, got, int(embedded.DefaultNumPartitions))
	require.Equal(t, "v0", got[0][0])
	require.Equal(t, "v19", got[0][19])
}

func TestCreateTopicsCompactAndConsumerGroup(t *testing.T) {
	b := start(t, embedded.DefaultPartitions(2))
	addrs := b.Addrs()

	admin, err := sarama.NewClusterAdmin(addrs, newConfig())
	require.NoError(t, err)
	defer func() { require.NoError(t, admin.Close()) }()
	compact := "compact"
	require.NoError(t, admin.CreateTopic("table", &sarama.TopicDetail{
		NumPartitions:     3,
		ReplicationFactor: 1,
		ConfigEntries:     map[string]*string{"cleanup.policy": &compact},
	}, false))
	res, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: "table"}}, sarama.DescribeConfigsOptions{})
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.Equal(t, sarama.ErrNoError, res[0].ErrorCode)
	policy := ""
	for _, e := range res[0].Configs {
		if e.Name == "cleanup.policy" {
			policy = e.Value
		}
	}
	require.Equal(t, "compact", policy)

	const n = 30
	produce(t, addrs, "table", n, "v")

	group, err := sarama.NewConsumerGroup(addrs, "group-1", newConfig())
	require.NoError(t, err)
	defer func() { require.NoError(t, group.Close()) }()
	h := &collector{want: n, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- group.Consume(ctx, []string{"table"}, h) }()
	select {
	case <-h.done:
	case <-ctx.Done():
		t.Fatalf("consumer group got %d of %d records", h.count(), n)
	}
	cancel()
	require.NoError(t, <-errc)

	// The group committed what it consumed.
	offsets, err := admin.ListConsumerGroupOffsets("group-1", map[string][]int32{"table": {0, 1, 2}})
	require.NoError(t, err)
	var committed int64
	for p := int32(0); p < 3; p++ {
		blk := offsets.GetBlock("table", p)
		require.NotNil(t, blk)
		require.Equal(t, sarama.ErrNoError, blk.Err)
		if blk.Offset > 0 {
			committed += blk.Offset
		}
	}
	require.Equal(t, int64(n), committed)

	// An auto-created topic gets DefaultPartitions partitions.
	client, err := sarama.NewClient(addrs, newConfig())
	require.NoError(t, err)
	defer func() { require.NoError(t, client.Close()) }()
	parts, err := client.Partitions("auto-two")
	require.NoError(t, err)
	require.Len(t, parts, 2)
}

type collector struct {
	mu   sync.Mutex
	n    int
	want int
	done chan struct{}
}

func (c *collector) count() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

func (*collector) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*collector) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (c *collector) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		s.MarkMessage(m, "")
		c.mu.Lock()
		c.n++
		if c.n == c.want {
			s.Commit()
			close(c.done)
		}
		c.mu.Unlock()
	}
	return nil
}

func TestDataDirPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b1, err := embedded.Start(embedded.DataDir(dir))
	require.NoError(t, err)
	addr := b1.Addrs()[0]
	produce(t, b1.Addrs(), "durable", 10, "before")
	require.NoError(t, b1.Close())
	require.NoError(t, b1.Close(), "Close is idempotent")

	// Restart on the same, now fixed, port.
	b2 := start(t, embedded.DataDir(dir), embedded.Addr(addr))
	require.Equal(t, []string{addr}, b2.Addrs())
	got := readAll(t, b2.Addrs(), "durable", 10)
	require.Equal(t, "before0", got[0][0])
	require.Equal(t, "before9", got[0][9])

	// The idempotent producer keeps working after the restart.
	produce(t, b2.Addrs(), "durable", 5, "after")
	got = readAll(t, b2.Addrs(), "durable", 15)
	require.Equal(t, "after4", got[0][14])
}

func TestTransactionsReadCommitted(t *testing.T) {
	b := start(t)
	addrs := b.Addrs()

	cfg := newConfig()
	cfg.Producer.Transaction.ID = "txn-1"
	p, err := sarama.NewSyncProducer(addrs, cfg)
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()

	send := func(v string) {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "txn", Value: sarama.StringEncoder(v)})
		require.NoError(t, err)
	}
	require.NoError(t, p.BeginTxn())
	send("aborted")
	require.NoError(t, p.AbortTxn())
	require.NoError(t, p.BeginTxn())
	send("committed")
	require.NoError(t, p.CommitTxn())

	c, err := sarama.NewConsumer(addrs, newConfig())
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	pc, err := c.ConsumePartition("txn", 0, sarama.OffsetOldest)
	require.NoError(t, err)
	defer pc.AsyncClose()
	select {
	case m := <-pc.Messages():
		require.Equal(t, "committed", string(m.Value))
	case <-time.After(10 * time.Second):
		t.Fatal("no committed record")
	}
}

func TestOptions(t *testing.T) {
	_, err := embedded.Start(embedded.Addr("no-port"))
	require.Error(t, err)
	_, err = embedded.Start(embedded.DefaultPartitions(0))
	require.Error(t, err)

	// A fixed port that is taken fails cleanly.
	b := start(t)
	_, err = embedded.Start(embedded.Addr(b.Addrs()[0]))
	require.Error(t, err)

	// All interfaces: the advertised address is still dialable. The logger
	// sees kfake's debug logs (Close with a DataDir always logs).
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	all, err := embedded.Start(embedded.Addr("0.0.0.0:0"), embedded.Logger(logger), embedded.DataDir(t.TempDir()))
	require.NoError(t, err)
	host, _, err := net.SplitHostPort(all.Addrs()[0])
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)
	produce(t, all.Addrs(), "any", 3, "v")
	readAll(t, all.Addrs(), "any", 3)
	require.NotNil(t, all.Cluster())
	require.NoError(t, all.Close())
	mu.Lock()
	require.Contains(t, logs.String(), "component=kfake")
	mu.Unlock()
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
