// Command goka is the floor of the throughput comparison in bench/compare
// (issue #6): the same 2 s tumbling count per emoji as EmoStream's
// aggregator, written as a plain goka processor with a changelogged group
// table, emitting nothing to an output topic. It is a lower bound on the work
// a goka user must do for the job, not an identical workload.
//
// goka can write its group table only under the key of the message being
// processed (Context.SetValue), so "a table keyed by emoji and window start"
// needs a loopback hop. Two modes:
//
//   - direct (the floor): the input callback decodes the JSON event and keeps,
//     under the emoji key, the counts of that emoji's open windows (a small
//     map window start -> count, typically one or two entries). One table
//     write per record, as our runtime writes its window store's changelog.
//     Each partition's stream time (largest event time seen) closes windows
//     as Kafka Streams does (end + grace <= stream time): closed windows leave
//     the table value and their final counts are kept in process memory,
//     records for closed windows are dropped as late. Nothing is emitted.
//   - loopback (the literal "table keyed emoji+window start"): the input
//     callback loops the record back keyed "<emoji>@<window start>"
//     (Context.Loopback, topic <group>-loop); the loop callback counts it in
//     an int64 table value under that key. Two hops per record; no late-record
//     handling (the benchmark data has no late records).
//
// The processor is done when it has processed -expect input records (all of
// the input topic, sentinels included) and every table write it made is in
// Kafka (the table topic's end offsets add up to the writes); then it closes
// the windows the final stream time closes (direct) or reads the table back
// (loopback) through Processor.Get, writes one wire.Result JSON line per
// (window, emoji) to -results, and prints "DONE <writes>" on stdout. It then
// runs until SIGTERM/SIGINT.
//
// Partitioning: goka hashes keys with FNV-1a by default; this processor uses
// sarama's murmur2 partitioner, the Java clients' partitioner the input was
// written with (see partitionHasher), so table writes of a key go to the
// partition the key is read from and Get finds them.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"log"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/emostream/emostream/examples/emostream/wire"
)

const maxPartitions = 1024

type floor struct {
	mode        string
	size, grace int64 // ms
	scale       int64
	processed   atomic.Int64 // input records (direct) or loop records (loopback) handled
	writes      atomic.Int64 // SetValue calls, i.e. table records produced
	late, bad   atomic.Int64
	streamTime  [maxPartitions]atomic.Int64 // per input partition, ms (direct mode)
	keys        sync.Map                    // table key written -> partition (int32)
	mu          sync.Mutex
	finals      map[finalKey]int64 // direct mode: closed windows
	proc        *goka.Processor
	tableTopic  string
}

type finalKey struct {
	emoji string
	start int64
}

func main() {
	brokers := flag.String("brokers", envOr("KAFKA_BROKERS", "127.0.0.1:29092"), "bootstrap brokers, comma-separated")
	group := flag.String("group", "emostream-bench-goka", "goka group (table topic <group>-table, loop topic <group>-loop)")
	input := flag.String("input", "topic1", "input topic")
	mode := flag.String("mode", "direct", "direct or loopback (see the package comment)")
	expect := flag.Int64("expect", 0, "input records to process before reporting DONE (required)")
	size := flag.Duration("window", 2*time.Second, "tumbling window size")
	grace := flag.Duration("grace", 500*time.Millisecond, "grace period (direct mode)")
	scale := flag.Int64("scale", 1000, "bursts = ceil(count / scale)")
	results := flag.String("results", "", "file for the final results, one wire.Result JSON per line (required)")
	flag.Parse()
	if *expect <= 0 || *results == "" {
		fatal(errors.New("-expect and -results are required"))
	}
	if *mode != "direct" && *mode != "loopback" {
		fatal(fmt.Errorf("-mode must be direct or loopback, got %q", *mode))
	}
	f := &floor{mode: *mode, size: size.Milliseconds(), grace: grace.Milliseconds(), scale: *scale,
		finals: map[finalKey]int64{}, tableTopic: *group + "-table"}
	for i := range f.streamTime {
		f.streamTime[i].Store(-1 << 62)
	}
	addrs := strings.FieldsFunc(*brokers, func(r rune) bool { return r == ',' || r == ' ' })

	in := goka.Stream(*input)
	var edges []goka.Edge
	if *mode == "direct" {
		edges = []goka.Edge{goka.Input(in, new(codec.Bytes), f.direct), goka.Persist(openWindowsCodec{})}
	} else {
		edges = []goka.Edge{
			goka.Input(in, new(codec.Bytes), f.loopIn),
			goka.Loop(new(codec.Int64), f.loopCount),
			goka.Persist(new(codec.Int64)),
		}
	}
	partitions, err := partitionCount(addrs, *input)
	if err != nil {
		fatal(err)
	}
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication = 1
	tm.Stream.Replication = 1
	proc, err := goka.NewProcessor(addrs, goka.DefineGroup(goka.Group(*group), edges...),
		goka.WithHasher(func() hash.Hash32 { return &partitionHasher{n: partitions} }),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(saramaConfig())),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(saramaConfig())),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(saramaConfig())),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(saramaConfig(), tm)),
		goka.WithStorageBuilder(storage.MemoryBuilder()),
		goka.WithLogger(log.New(os.Stderr, "goka: ", log.LstdFlags|log.Lmicroseconds)),
	)
	if err != nil {
		fatal(err)
	}
	f.proc = proc

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- proc.Run(ctx) }()
	go func() {
		if err := f.awaitDone(ctx, addrs, *expect, *results); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "goka-bench:", err)
			stop()
		}
	}()
	if err := <-errc; err != nil {
		fatal(err)
	}
}

// saramaConfig is goka's default configuration (snappy, 100 ms / 64 KiB
// producer flush, copartitioning balancer) with the protocol version Kafka 4
// needs, input read from the oldest offset and acks=all, as in
// pkg/stream/goka_bench_test.go. A fresh copy per builder (goka writes into it).
func saramaConfig() *sarama.Config {
	cfg := goka.DefaultConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	return cfg
}

func (f *floor) windowStart(ts int64) int64 {
	ws := ts / f.size * f.size
	if ts < 0 && ts%f.size != 0 {
		ws -= f.size
	}
	return ws
}

// direct counts in the emoji's table value, closing windows by stream time.
func (f *floor) direct(ctx goka.Context, msg any) {
	defer f.processed.Add(1)
	var ev wire.Event
	if err := json.Unmarshal(msg.([]byte), &ev); err != nil {
		f.bad.Add(1)
		return
	}
	p := ctx.Partition()
	if p < 0 || p >= maxPartitions {
		ctx.Fail(fmt.Errorf("partition %d: at most %d partitions", p, maxPartitions))
	}
	st := &f.streamTime[p]
	if ev.Timestamp > st.Load() {
		st.Store(ev.Timestamp) // one goroutine per partition
	}
	bound := st.Load() - f.grace // windows with end <= bound are closed
	wins, _ := ctx.Value().(openWindows)
	if wins == nil {
		wins = openWindows{}
	}
	f.closeWindows(ctx.Key(), wins, bound)
	ws := f.windowStart(ev.Timestamp)
	if ws+f.size <= bound {
		f.late.Add(1)
	} else {
		wins[ws]++
	}
	ctx.SetValue(wins)
	f.writes.Add(1)
	f.keys.LoadOrStore(ctx.Key(), ctx.Partition())
}

func (f *floor) closeWindows(emoji string, wins openWindows, bound int64) {
	var closed []int64
	for ws := range wins {
		if ws+f.size <= bound {
			closed = append(closed, ws)
		}
	}
	if len(closed) == 0 {
		return
	}
	f.mu.Lock()
	for _, ws := range closed {
		f.finals[finalKey{emoji, ws}] = wins[ws]
		delete(wins, ws)
	}
	f.mu.Unlock()
}

func (f *floor) loopIn(ctx goka.Context, msg any) {
	var ev wire.Event
	if err := json.Unmarshal(msg.([]byte), &ev); err != nil {
		f.bad.Add(1)
		f.processed.Add(1) // never looped back
		return
	}
	ctx.Loopback(ctx.Key()+"@"+strconv.FormatInt(f.windowStart(ev.Timestamp), 10), int64(1))
}

func (f *floor) loopCount(ctx goka.Context, msg any) {
	defer f.processed.Add(1)
	n, _ := ctx.Value().(int64)
	inc, _ := msg.(int64)
	ctx.SetValue(n + inc)
	f.writes.Add(1)
	f.keys.LoadOrStore(ctx.Key(), ctx.Partition())
}

// awaitDone waits until expect records were handled and every table write is
// in Kafka, then collects and writes the results and prints DONE.
func (f *floor) awaitDone(ctx context.Context, addrs []string, expect int64, resultsFile string) error {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	var client sarama.Client
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if f.processed.Load() < expect {
			continue
		}
		if client == nil {
			var err error
			if client, err = sarama.NewClient(addrs, cfg); err != nil {
				return err
			}
			defer client.Close()
		}
		written, err := endOffsets(client, f.tableTopic)
		if err != nil {
			return err
		}
		if written >= f.writes.Load() {
			break
		}
	}
	res, err := f.collect()
	if err != nil {
		return err
	}
	if err := writeResults(resultsFile, res); err != nil {
		return err
	}
	fmt.Printf("DONE writes=%d processed=%d late=%d bad=%d results=%d\n",
		f.writes.Load(), f.processed.Load(), f.late.Load(), f.bad.Load(), len(res))
	return nil
}

// partitionHasher is a goka hasher that places keys as Kafka's Java
// clients do: its Sum32 is the partition sarama's murmur2 partitioner picks
// among n (the input's partitions, which goka's group topics copy), so
// goka's hash % n is that partition.
type partitionHasher struct {
	n   int32
	key []byte
}

func (h *partitionHasher) Write(p []byte) (int, error) {
	h.key = append(h.key, p...)
	return len(p), nil
}
func (h *partitionHasher) Sum32() uint32 {
	p, _ := sarama.NewMurmur2Partitioner("").Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(h.key)}, h.n)
	return uint32(p)
}
func (h *partitionHasher) Sum(b []byte) []byte {
	s := h.Sum32()
	return append(b, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}
func (h *partitionHasher) Reset()         { h.key = h.key[:0] }
func (h *partitionHasher) Size() int      { return 4 }
func (h *partitionHasher) BlockSize() int { return 1 }

func partitionCount(addrs []string, topic string) (int32, error) {
	client, err := sarama.NewClient(addrs, saramaConfig())
	if err != nil {
		return 0, err
	}
	defer func() { _ = client.Close() }()
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	return int32(len(parts)), nil
}

func endOffsets(client sarama.Client, topic string) (int64, error) {
	if err := client.RefreshMetadata(topic); err != nil {
		return 0, err
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, p := range parts {
		off, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		sum += off
	}
	return sum, nil
}

// collect reads the table back: in direct mode it closes what the final
// stream time of each partition closes (windows of keys that saw no record
// after their close); in loopback mode every table entry is a result.
func (f *floor) collect() ([]wire.Result, error) {
	keys := map[string]int32{}
	f.keys.Range(func(k, p any) bool { keys[k.(string)] = p.(int32); return true })
	for k, part := range keys {
		v, err := f.proc.Get(k)
		if err != nil {
			return nil, err
		}
		switch f.mode {
		case "direct":
			// part is the input partition k was read from: its stream time
			// decides which of k's windows are closed.
			wins, _ := v.(openWindows)
			f.closeWindows(k, wins, f.streamTime[part].Load()-f.grace)
		case "loopback":
			n, _ := v.(int64)
			i := strings.LastIndexByte(k, '@')
			if i < 0 {
				return nil, fmt.Errorf("bad table key %q", k)
			}
			ws, err := strconv.ParseInt(k[i+1:], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("bad table key %q", k)
			}
			f.finals[finalKey{k[:i], ws}] = n
		}
	}
	out := make([]wire.Result, 0, len(f.finals))
	for k, n := range f.finals {
		out = append(out, wire.NewResult(k.start, time.Duration(f.size)*time.Millisecond, k.emoji, n, f.scale))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].WindowStart != out[j].WindowStart {
			return out[i].WindowStart < out[j].WindowStart
		}
		return out[i].EmojiType < out[j].EmojiType
	})
	return out, nil
}

func writeResults(path string, res []wire.Result) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(fh)
	for _, r := range res {
		b, err := r.Marshal()
		if err != nil {
			return err
		}
		_, _ = w.Write(b)
		_ = w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return fh.Close()
}

// openWindows is the direct mode's table value: window start -> count.
type openWindows map[int64]int64

// openWindowsCodec encodes openWindows as varint pairs.
type openWindowsCodec struct{}

func (openWindowsCodec) Encode(v any) ([]byte, error) {
	w, ok := v.(openWindows)
	if !ok {
		return nil, fmt.Errorf("openWindowsCodec: unexpected %T", v)
	}
	b := make([]byte, 0, len(w)*2*binary.MaxVarintLen64)
	for ws, n := range w {
		b = binary.AppendVarint(b, ws)
		b = binary.AppendVarint(b, n)
	}
	return b, nil
}

func (openWindowsCodec) Decode(b []byte) (any, error) {
	w := openWindows{}
	for len(b) > 0 {
		ws, n1 := binary.Varint(b)
		if n1 <= 0 {
			return nil, io.ErrUnexpectedEOF
		}
		n, n2 := binary.Varint(b[n1:])
		if n2 <= 0 {
			return nil, io.ErrUnexpectedEOF
		}
		w[ws] = n
		b = b[n1+n2:]
	}
	return w, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "goka-bench:", err)
	os.Exit(2)
}
