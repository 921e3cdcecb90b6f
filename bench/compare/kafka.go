package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/bench/internal/harness"
	"github.com/emostream/emostream/examples/emostream/wire"
)

// broker is the Kafka the benchmark runs on: KAFKA_BROKERS if set, else the
// local one of scripts/kafka-local.sh (started if needed, and then stopped
// again at the end unless KEEP_KAFKA=1).
type broker struct {
	root    string
	brokers []string
	started bool
}

func startBroker(root string) (*broker, error) {
	b := &broker{root: root}
	if env := os.Getenv("KAFKA_BROKERS"); env != "" {
		b.brokers = splitList(env)
		logf("using KAFKA_BROKERS=%s", env)
		return b, nil
	}
	script := filepath.Join(root, "scripts", "kafka-local.sh")
	running := exec.Command("bash", script, "status").Run() == nil
	cmd := exec.Command("bash", script, "up")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("scripts/kafka-local.sh up: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "KAFKA_BROKERS="); ok {
			b.brokers = splitList(v)
		}
	}
	if len(b.brokers) == 0 {
		return nil, errors.New("scripts/kafka-local.sh up printed no KAFKA_BROKERS line")
	}
	b.started = !running
	if running {
		logf("reusing the local Kafka that was already running (left running)")
	}
	return b, nil
}

func (b *broker) stop() {
	if !b.started {
		return
	}
	if os.Getenv("KEEP_KAFKA") == "1" {
		logf("KEEP_KAFKA=1: leaving the local Kafka running (make kafka-down stops it)")
		return
	}
	cmd := exec.Command("bash", filepath.Join(b.root, "scripts", "kafka-local.sh"), "down")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		logf("kafka-local.sh down: %v", err)
	}
}

// pid returns the local broker's process id, for its CPU time, or 0.
func (b *broker) pid() int { return harness.LocalKafkaPID(b.brokers) }

// warmUp makes the broker create its internal topics (__consumer_offsets,
// and __transaction_state for exactly-once) now: on a fresh broker the first
// consumer group or transactional producer waits for them, and that would
// be charged to whichever engine runs first.
func (b *broker) warmUp(transactions bool) error {
	cfg := saramaConfig()
	cfg.Metadata.Retry.Max = 120
	client, err := sarama.NewClient(b.brokers, cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := client.Coordinator("emostream-bench-warmup")
		if err == nil && transactions {
			_, err = client.TransactionCoordinator("emostream-bench-warmup")
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("broker warm-up: %w", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "emostream-bench-compare"
	cfg.Metadata.Retry.Max = 20
	cfg.Metadata.Retry.Backoff = 250 * time.Millisecond
	return cfg
}

func (b *broker) createTopic(name string, partitions int32, configs map[string]string) error {
	admin, err := sarama.NewClusterAdmin(b.brokers, saramaConfig())
	if err != nil {
		return err
	}
	defer admin.Close()
	entries := map[string]*string{}
	for k, v := range configs {
		entries[k] = &v
	}
	if err := admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: -1, ConfigEntries: entries}, false); err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	client, err := sarama.NewClient(b.brokers, saramaConfig())
	if err != nil {
		return err
	}
	defer client.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_ = client.RefreshMetadata(name)
		if parts, err := client.WritablePartitions(name); err == nil && int32(len(parts)) == partitions {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s not visible after creation", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// keepForever turns off time- and size-based retention: the benchmark's
// records carry event timestamps months in the past.
var keepForever = map[string]string{"retention.ms": "-1", "retention.bytes": "-1"}

// checkInput verifies that the input topic still holds every record.
func (b *broker) checkInput(d *dataset, topic string) error {
	client, err := sarama.NewClient(b.brokers, saramaConfig())
	if err != nil {
		return err
	}
	defer client.Close()
	for p := 0; p < d.partitions; p++ {
		oldest, err := client.GetOffset(topic, int32(p), sarama.OffsetOldest)
		if err != nil {
			return err
		}
		newest, err := client.GetOffset(topic, int32(p), sarama.OffsetNewest)
		if err != nil {
			return err
		}
		want := int64(d.perPart[p])
		if !d.noSentinels {
			want++
		}
		if oldest != 0 || newest != want {
			return fmt.Errorf("input topic %s partition %d holds offsets %d..%d, want 0..%d (deleted by retention?)",
				topic, p, oldest, newest, want)
		}
	}
	return nil
}

// deleteTopics deletes every topic and consumer group whose name starts with
// prefix.
func (b *broker) deleteTopics(prefix string) {
	admin, err := sarama.NewClusterAdmin(b.brokers, saramaConfig())
	if err != nil {
		logf("cleanup: %v", err)
		return
	}
	defer admin.Close()
	topics, err := admin.ListTopics()
	if err != nil {
		logf("cleanup: %v", err)
		return
	}
	for t := range topics {
		if strings.HasPrefix(t, prefix) {
			if err := admin.DeleteTopic(t); err != nil {
				logf("cleanup: delete %s: %v", t, err)
			}
		}
	}
	groups, err := admin.ListConsumerGroups()
	if err != nil {
		logf("cleanup: %v", err)
		return
	}
	for g := range groups {
		if strings.HasPrefix(g, prefix) {
			_ = admin.DeleteConsumerGroup(g)
		}
	}
}

// written sums the end offsets of every topic whose name starts with one of
// prefixes: the records (and, with transactions, commit markers) an engine
// wrote to Kafka.
func (b *broker) written(prefixes ...string) (int64, error) {
	client, err := sarama.NewClient(b.brokers, saramaConfig())
	if err != nil {
		return 0, err
	}
	defer client.Close()
	topics, err := client.Topics()
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, t := range topics {
		match := false
		for _, p := range prefixes {
			match = match || strings.HasPrefix(t, p)
		}
		if !match {
			continue
		}
		parts, err := client.Partitions(t)
		if err != nil {
			return 0, err
		}
		for _, p := range parts {
			off, err := client.GetOffset(t, p, sarama.OffsetNewest)
			if err != nil {
				return 0, err
			}
			sum += off
		}
	}
	return sum, nil
}

// preload writes the data set (sentinels last) with Kafka's default murmur2
// partitioning, as the ingest API does, and checks the partition sizes.
func (b *broker) preload(d *dataset, topic string) error {
	cfg := saramaConfig()
	cfg.Producer.Partitioner = sarama.NewMurmur2Partitioner
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Return.Successes = true
	// Batches stay below the broker's message.max.bytes (1 MiB by default).
	cfg.Producer.Flush.Bytes = 512 << 10
	cfg.Producer.Flush.Frequency = 10 * time.Millisecond
	p, err := sarama.NewAsyncProducer(b.brokers, cfg)
	if err != nil {
		return err
	}
	var (
		wg       sync.WaitGroup
		firstErr error
		acked    int
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range p.Successes() {
			acked++
		}
	}()
	go func() {
		defer wg.Done()
		for e := range p.Errors() {
			if firstErr == nil {
				firstErr = e
			}
		}
	}()
	var marshalErr error
	d.each(func(key string, ev wire.Event) {
		v, err := ev.Marshal()
		if err != nil {
			marshalErr = err
			return
		}
		p.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key),
			Value: sarama.ByteEncoder(v), Timestamp: time.UnixMilli(ev.Timestamp)}
	}, true)
	p.AsyncClose()
	wg.Wait()
	switch {
	case marshalErr != nil:
		return marshalErr
	case firstErr != nil:
		return fmt.Errorf("preload: %w", firstErr)
	case acked != d.n+d.sentinelCount():
		return fmt.Errorf("preload: %d of %d records acknowledged", acked, d.n+d.sentinelCount())
	}
	client, err := sarama.NewClient(b.brokers, saramaConfig())
	if err != nil {
		return err
	}
	defer client.Close()
	for part := 0; part < d.partitions; part++ {
		off, err := client.GetOffset(topic, int32(part), sarama.OffsetNewest)
		if err != nil {
			return err
		}
		if want := int64(d.perPart[part] + d.sentinelCount()/d.partitions); off != want {
			return fmt.Errorf("preload: partition %d holds %d records, want %d (murmur2 partitioning mismatch?)", part, off, want)
		}
	}
	return nil
}

// collector follows an engine's output topic (read_committed, from the
// start) and notes when the expected result set is complete.
//
// It is the measuring instrument and shares the two cores with the engine
// it measures, so it does as little as it can while results arrive: each
// record is queued with its arrival time, and decoding and comparing wait
// until as many records have arrived as results are expected (before that
// the set cannot be complete). A checker goroutine then decodes the queue,
// and from that point on every further record as it comes; the set's
// completion time is the arrival time of the record that completed it, not
// the time the checker got to it. (Until 2026-12-03 every record was decoded
// on arrival: at 1,000,000 keys that took about 0.8 of a core while the
// engine was writing its results.)
type collector struct {
	consumer sarama.Consumer
	parts    []sarama.PartitionConsumer
	expected map[rkey]int64
	// anyKey accepts results whose emoji_type is any key (the scale
	// sweep's "<emoji>:<user>" keys), not only one emoji.
	anyKey bool

	mu       sync.Mutex // guards the fields below up to doneAt
	pending  []arrival  // arrived, not yet checked
	records  int
	first    time.Time
	lastRecv time.Time
	complete chan struct{}
	doneAt   time.Time

	readers sync.WaitGroup // one goroutine per partition consumer
	wake    chan struct{}  // the checker has records to look at
	stop    chan struct{}  // closed by close: check what is left and exit
	checked chan struct{}  // closed by the checker when it exits

	// Owned by the checker; read by others only after checked is closed.
	results   map[rkey]wire.Result
	raw       map[rkey]string // value bytes of the first copy
	dups      int             // further copies of a result with the same value
	conflicts int             // further copies with a different value
	extra     int             // results for (window, emoji) pairs not expected
	bad       int             // values that do not decode
	badKeys   int             // record key != emoji_type
	seen      int             // expected pairs seen
}

// arrival is one output record as the collector received it.
type arrival struct {
	key, value []byte
	at         time.Time
}

func newCollector(brokers []string, topic string, partitions int32, expected map[rkey]int64, anyKey bool) (*collector, error) {
	cfg := saramaConfig()
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.MaxWaitTime = 50 * time.Millisecond
	cfg.Consumer.Fetch.Default = 4 << 20
	cfg.Consumer.Return.Errors = true
	consumer, err := sarama.NewConsumer(brokers, cfg)
	if err != nil {
		return nil, err
	}
	c := &collector{consumer: consumer, expected: expected, anyKey: anyKey,
		results: make(map[rkey]wire.Result, len(expected)), raw: make(map[rkey]string, len(expected)),
		complete: make(chan struct{}), wake: make(chan struct{}, 1), stop: make(chan struct{}), checked: make(chan struct{})}
	go c.check()
	for p := int32(0); p < partitions; p++ {
		// A topic created a moment ago may not have a leader that serves
		// requests yet (NOT_LEADER_OR_FOLLOWER): retry for a while.
		var pc sarama.PartitionConsumer
		deadline := time.Now().Add(20 * time.Second)
		for {
			pc, err = consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			c.close()
			return nil, fmt.Errorf("consume %s/%d: %w", topic, p, err)
		}
		c.parts = append(c.parts, pc)
		c.readers.Go(func() {
			for m := range pc.Messages() {
				c.handle(m)
			}
		})
		go func() {
			for e := range pc.Errors() {
				logf("collector %s/%d: %v", topic, p, e)
			}
		}()
	}
	return c, nil
}

// handle queues a record with its arrival time and, once enough records
// arrived for the set to be complete, wakes the checker.
func (c *collector) handle(m *sarama.ConsumerMessage) {
	now := time.Now()
	c.mu.Lock()
	c.records++
	c.lastRecv = now
	if c.first.IsZero() {
		c.first = now
	}
	c.pending = append(c.pending, arrival{key: m.Key, value: m.Value, at: now})
	ready := c.records >= len(c.expected)
	c.mu.Unlock()
	if ready {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// check runs until close: it takes the queued records whenever woken and
// checks them in arrival order; at close, it checks what is left.
func (c *collector) check() {
	defer close(c.checked)
	for {
		stopping := false
		select {
		case <-c.wake:
		case <-c.stop:
			stopping = true
		}
		c.mu.Lock()
		batch := c.pending
		c.pending = nil
		c.mu.Unlock()
		for _, a := range batch {
			c.checkOne(a)
		}
		if stopping {
			return
		}
	}
}

// checkOne decodes and compares one record.
func (c *collector) checkOne(a arrival) {
	r, err := c.decode(a.value)
	if err != nil {
		c.bad++
		return
	}
	if string(a.key) != r.EmojiType {
		c.badKeys++
	}
	k := rkey{r.WindowStart, r.EmojiType}
	if old, ok := c.results[k]; ok {
		if old == r {
			c.dups++
		} else {
			c.conflicts++
		}
		return
	}
	c.results[k] = r
	c.raw[k] = string(a.value)
	if _, ok := c.expected[k]; !ok {
		c.extra++
		return
	}
	c.seen++
	if c.seen == len(c.expected) {
		c.mu.Lock()
		c.doneAt = a.at
		c.mu.Unlock()
		close(c.complete)
	}
}

// decode reads a result: wire.DecodeResult, or with anyKey the same checks
// except that emoji_type may be any non-empty string.
func (c *collector) decode(b []byte) (wire.Result, error) {
	if !c.anyKey {
		return wire.DecodeResult(b)
	}
	var r wire.Result
	if err := json.Unmarshal(b, &r); err != nil {
		return r, err
	}
	if r.EmojiType == "" || r.WindowEnd <= r.WindowStart || r.Count <= 0 || r.Bursts < 0 {
		return r, fmt.Errorf("invalid result %s", b)
	}
	return r, nil
}

// drain waits until nothing has arrived for quiet, then stops.
func (c *collector) drain(quiet time.Duration) {
	start := time.Now()
	for {
		c.mu.Lock()
		last := c.lastRecv
		c.mu.Unlock()
		if last.Before(start) {
			last = start
		}
		if time.Since(last) >= quiet {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.close()
}

// close stops the consumers and waits until the checker has checked every
// record that arrived; the checker's fields may be read after it returns.
func (c *collector) close() {
	for _, pc := range c.parts {
		_ = pc.Close()
	}
	_ = c.consumer.Close()
	c.readers.Wait()
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.checked
}

// readResultFile reads goka's results (wire.Result JSON lines).
func readResultFile(path string) (map[rkey]wire.Result, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	out := map[rkey]wire.Result{}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		r, err := wire.DecodeResult(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out[rkey{r.WindowStart, r.EmojiType}] = r
	}
	return out, sc.Err()
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}
