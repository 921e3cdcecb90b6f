package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
)

// LocalKafka drives scripts/kafka-local.sh for the driver's own broker,
// with its own state dir and ports so it never touches another one.
type LocalKafka struct {
	Script         string // path of kafka-local.sh
	StateDir       string
	Port           int
	ControllerPort int
	// Nodes is the number of brokers (the script's BROKERS; 0 means 1):
	// node i listens on Port+2(i-1).
	Nodes int
	// Log receives the script's progress output.
	Log io.Writer

	restarts int // broker restarts so far (on a cluster: one node each, in turn)
}

// Brokers is the bootstrap address (one per node).
func (k *LocalKafka) Brokers() []string {
	out := []string{fmt.Sprintf("127.0.0.1:%d", k.Port)}
	for i := 1; i < k.Nodes; i++ {
		out = append(out, fmt.Sprintf("127.0.0.1:%d", k.Port+2*i))
	}
	return out
}

// run runs one subcommand of the script and returns its stdout.
func (k *LocalKafka) run(sub ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{k.Script}, sub...)...)
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("BROKERS=%d", max(k.Nodes, 1)),
		"KAFKA_STATE_DIR="+k.StateDir,
		fmt.Sprintf("KAFKA_PORT=%d", k.Port),
		fmt.Sprintf("KAFKA_CONTROLLER_PORT=%d", k.ControllerPort))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = prefixWriter(k.Log, "  | ")
	// Its own process group, so a Ctrl-C does not cut it off halfway; the
	// driver runs `down` afterwards anyway.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kafka-local.sh %s: %w", sub, err)
	}
	return out.String(), nil
}

// Up wipes whatever an earlier run left in the state dir and starts a
// fresh broker.
func (k *LocalKafka) Up() error {
	if _, err := k.run("down"); err != nil {
		return err
	}
	out, err := k.run("up")
	if err == nil && !strings.Contains(out, "KAFKA_BROKERS=") {
		err = errors.New("kafka-local.sh up printed no KAFKA_BROKERS line")
	}
	return err
}

// Restart stops the broker and starts it again on the same data. It
// returns how long the broker was away (from the stop to ready again). On a
// cluster it restarts one node, each in turn: a controlled shutdown
// (SIGTERM) and a start once it is gone.
func (k *LocalKafka) Restart() (time.Duration, error) {
	start := time.Now()
	var node []string
	if k.Nodes > 1 {
		node = []string{strconv.Itoa(k.restarts%k.Nodes + 1)}
		fmt.Fprintf(k.Log, "  | restarting node %s of %d\n", node[0], k.Nodes)
	}
	k.restarts++
	if _, err := k.run(append([]string{"stop"}, node...)...); err != nil {
		return time.Since(start), err
	}
	_, err := k.run(append([]string{"start"}, node...)...)
	return time.Since(start), err
}

// Down stops the broker and deletes its state. With keepLogs set, the
// broker's server.log is copied there first.
func (k *LocalKafka) Down(keepLogs string) error {
	if keepLogs != "" && k.Nodes <= 1 {
		if b, err := os.ReadFile(k.StateDir + "/logs/server.log"); err == nil {
			_ = os.WriteFile(keepLogs, b, 0o644)
		}
	}
	for i := 1; keepLogs != "" && i <= k.Nodes && k.Nodes > 1; i++ {
		if b, err := os.ReadFile(fmt.Sprintf("%s/node-%d/logs/server.log", k.StateDir, i)); err == nil {
			_ = os.WriteFile(fmt.Sprintf("%s.node-%d", keepLogs, i), b, 0o644)
		}
	}
	_, err := k.run("down")
	return err
}

// prefixWriter writes every line to w with a prefix.
func prefixWriter(w io.Writer, prefix string) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintf(w, "%s%s\n", prefix, sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return pw
}

// saramaConfig is the driver's client configuration: committed reads only.
func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.ClientID = "emostream-smoke"
	c.Net.DialTimeout = 5 * time.Second
	c.Metadata.AllowAutoTopicCreation = false
	c.Metadata.Retry.Max = 20
	c.Metadata.Retry.Backoff = 500 * time.Millisecond
	c.Consumer.IsolationLevel = sarama.ReadCommitted
	c.Consumer.Return.Errors = true
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	c.Consumer.Fetch.Default = 4 << 20
	return c
}

// createTopics creates the run's topics with the given partitions.
func createTopics(brokers []string, partitions int32, topics ...string) error {
	admin, err := sarama.NewClusterAdmin(brokers, saramaConfig())
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, t := range topics {
		if err := admin.CreateTopic(t, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: -1}, false); err != nil {
			return fmt.Errorf("creating topic %s: %w", t, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		meta, err := admin.DescribeTopics(topics)
		ready := err == nil
		for _, m := range meta {
			ready = ready && m.Err == sarama.ErrNoError && len(m.Partitions) == int(partitions)
			for _, p := range m.Partitions {
				ready = ready && p.Err == sarama.ErrNoError && p.Leader >= 0
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %v not ready after 30s (last error %v)", topics, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Observer reads the state of the run's topics and consumer group.
type Observer struct {
	client sarama.Client
	admin  sarama.ClusterAdmin
}

// NewObserver connects to the brokers.
func NewObserver(brokers []string) (*Observer, error) {
	client, err := sarama.NewClient(brokers, saramaConfig())
	if err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return nil, err
	}
	return &Observer{client: client, admin: admin}, nil
}

// Close disconnects.
func (o *Observer) Close() { _ = o.admin.Close() } // closes the client too

// offsets returns the latest offset of every partition of topic: the high
// watermark, or with committed set the last stable offset (below any open
// transaction).
func (o *Observer) offsets(topic string, committed bool) (map[int32]int64, error) {
	parts, err := o.client.Partitions(topic)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(parts))
	for _, p := range parts {
		leader, err := o.client.Leader(topic, p)
		if err != nil {
			return nil, err
		}
		req := sarama.NewOffsetRequest(o.client.Config().Version)
		if committed {
			req.IsolationLevel = sarama.ReadCommitted
		}
		req.AddBlock(topic, p, sarama.OffsetNewest, 1)
		resp, err := leader.GetAvailableOffsets(req)
		if err != nil {
			_ = o.client.RefreshMetadata(topic)
			return nil, err
		}
		b := resp.GetBlock(topic, p)
		switch {
		case b == nil:
			return nil, fmt.Errorf("%s/%d: no offset in the answer", topic, p)
		case b.Err != sarama.ErrNoError:
			_ = o.client.RefreshMetadata(topic)
			return nil, fmt.Errorf("%s/%d: %w", topic, p, b.Err)
		case len(b.Offsets) > 0:
			out[p] = b.Offsets[0]
		default:
			out[p] = b.Offset
		}
	}
	return out, nil
}

// Lag is the consumer group's total lag on topic: the records between its
// committed offsets and the high watermarks.
func (o *Observer) Lag(group, topic string) (int64, error) {
	hwm, err := o.offsets(topic, false)
	if err != nil {
		return 0, err
	}
	parts := make([]int32, 0, len(hwm))
	for p := range hwm {
		parts = append(parts, p)
	}
	resp, err := o.admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if err != nil {
		return 0, err
	}
	var lag int64
	for p, end := range hwm {
		committed := int64(0)
		if b := resp.GetBlock(topic, p); b != nil && b.Err == sarama.ErrNoError && b.Offset >= 0 {
			committed = b.Offset
		}
		if end > committed {
			lag += end - committed
		}
	}
	return lag, nil
}

// Group describes the consumer group: its state ("Stable", ...) and its
// member ids, sorted and joined into one string to compare.
func (o *Observer) Group(group string) (state, members string, n int, err error) {
	gs, err := o.admin.DescribeConsumerGroups([]string{group})
	if err != nil {
		return "", "", 0, err
	}
	if len(gs) != 1 {
		return "", "", 0, fmt.Errorf("describing group %s: %d answers", group, len(gs))
	}
	if gs[0].Err != sarama.ErrNoError {
		return "", "", 0, fmt.Errorf("describing group %s: %w", group, gs[0].Err)
	}
	ids := make([]string, 0, len(gs[0].Members))
	for id := range gs[0].Members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return gs[0].State, strings.Join(ids, ","), len(ids), nil
}

// Committed returns the group's committed offset of every partition of
// topic (-1: none).
func (o *Observer) Committed(group, topic string) (map[int32]int64, error) {
	parts, err := o.client.Partitions(topic)
	if err != nil {
		return nil, err
	}
	resp, err := o.admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(parts))
	for _, p := range parts {
		out[p] = -1
		if b := resp.GetBlock(topic, p); b != nil && b.Err == sarama.ErrNoError {
			out[p] = b.Offset
		}
	}
	return out, nil
}

// Ends sums the high watermarks of topics, to see whether anything is
// still being written.
func (o *Observer) Ends(topics ...string) (int64, error) {
	var sum int64
	for _, t := range topics {
		hwm, err := o.offsets(t, false)
		if err != nil {
			return 0, err
		}
		for _, v := range hwm {
			sum += v
		}
	}
	return sum, nil
}

// OpenTransactions counts the partitions of topics whose last stable offset
// is below the high watermark: an open transaction hides their tail from
// read_committed readers.
func (o *Observer) OpenTransactions(topics ...string) (int, error) {
	n := 0
	for _, t := range topics {
		hwm, err := o.offsets(t, false)
		if err != nil {
			return 0, err
		}
		lso, err := o.offsets(t, true)
		if err != nil {
			return 0, err
		}
		for p, end := range hwm {
			if lso[p] < end {
				n++
			}
		}
	}
	return n, nil
}

// Topics lists the cluster's topics whose names start with prefix.
func (o *Observer) Topics(prefix string) ([]string, error) {
	all, err := o.admin.ListTopics()
	if err != nil {
		return nil, err
	}
	var out []string
	for name := range all {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ReadAll reads every committed record of topic, all partitions in
// parallel. A partition is done at its last offset, or when nothing more
// arrives for idle (its tail is a transaction marker or aborted records,
// which read_committed readers never see).
func (o *Observer) ReadAll(ctx context.Context, topic string, idle time.Duration, headers bool) ([]Record, error) {
	hwm, err := o.offsets(topic, false)
	if err != nil {
		return nil, err
	}
	consumer, err := sarama.NewConsumerFromClient(o.client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	var (
		mu      sync.Mutex
		out     []Record
		firstEr error
		wg      sync.WaitGroup
	)
	for p, end := range hwm {
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, fmt.Errorf("%s/%d: %w", topic, p, err)
		}
		wg.Go(func() {
			defer pc.AsyncClose()
			var recs []Record
			timer := time.NewTimer(idle)
			defer timer.Stop()
			var err error
		loop:
			for {
				select {
				case <-ctx.Done():
					err = ctx.Err()
					break loop
				case e := <-pc.Errors():
					err = fmt.Errorf("%s/%d: %w", topic, p, e)
					break loop
				case <-timer.C:
					break loop
				case m := <-pc.Messages():
					r := Record{Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Timestamp: m.Timestamp.UnixMilli()}
					if headers {
						r.Headers = make(map[string]string, len(m.Headers))
						for _, h := range m.Headers {
							r.Headers[string(h.Key)] = string(h.Value)
						}
					}
					recs = append(recs, r)
					if m.Offset >= end-1 {
						break loop
					}
					timer.Reset(idle)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			out = append(out, recs...)
			if err != nil && firstEr == nil {
				firstEr = err
			}
		})
	}
	wg.Wait()
	return out, firstEr
}
