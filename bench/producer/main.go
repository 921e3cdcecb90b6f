// Command producer measures what one Kafka write costs the writing process
// with two Go clients: sarama's AsyncProducer configured as pkg/stream's
// runtime configures it (idempotent, one request in flight, 2 ms / 1 MiB
// flushes, successes returned and read back), and franz-go's kgo client
// (idempotent, 2 ms linger, a promise per record). It is the measurement
// behind "Not done" item 6 of docs/performance.md: how much of the runtime's
// CPU per record a different producer could save.
//
//	scripts/kafka-local.sh up
//	go run ./bench/producer -brokers 127.0.0.1:29092
//
// Each run writes -records records (-key-bytes and -value-bytes long, keys
// spread over -partitions partitions by a manual partitioner, as the
// runtime does) from -senders goroutines, and waits for every
// acknowledgement. The two clients alternate, -runs times each, on a topic
// of their own. It prints, per run, the wall time, records/s and the
// process's CPU (user + system) per record, then each client's medians.
// Not part of CI: it needs a broker, and the machine's pace moves, so only
// runs of one invocation compare.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:29092", "bootstrap brokers, comma-separated")
	records := flag.Int("records", 1_000_000, "records per run")
	senders := flag.Int("senders", 4, "goroutines writing at once (the runtime's tasks)")
	partitions := flag.Int("partitions", 4, "partitions of the topic")
	keyBytes := flag.Int("key-bytes", 24, "key length")
	valueBytes := flag.Int("value-bytes", 40, "value length")
	runs := flag.Int("runs", 3, "runs per client, alternating")
	flush := flag.Duration("flush", 2*time.Millisecond, "sarama's Producer.Flush.Frequency and kgo's linger (the runtime: 2ms)")
	flag.Parse()
	bs := strings.Split(*brokers, ",")
	topic := fmt.Sprintf("bench-producer-%d", time.Now().UnixNano())
	if err := createTopic(bs, topic, int32(*partitions)); err != nil {
		fail(err)
	}
	defer deleteTopic(bs, topic)
	w := workload{records: *records, senders: *senders, partitions: int32(*partitions), key: *keyBytes, value: *valueBytes, flush: *flush}
	fmt.Printf("%d records per run, %d senders, %d partitions, keys %d B, values %d B, topic %s\n",
		w.records, w.senders, w.partitions, w.key, w.value, topic)
	results := map[string][]result{}
	clients := []struct {
		name string
		run  func([]string, string, workload) (result, error)
	}{{"sarama", runSarama}, {"kgo", runKgo}}
	for i := range *runs {
		for _, c := range clients {
			r, err := c.run(bs, topic, w)
			if err != nil {
				fail(fmt.Errorf("%s run %d: %w", c.name, i+1, err))
			}
			results[c.name] = append(results[c.name], r)
			fmt.Printf("%-6s run %d: %6.2f s  %9.0f records/s  %5.2f µs CPU per record\n",
				c.name, i+1, r.wall.Seconds(), float64(w.records)/r.wall.Seconds(), r.cpuPerRecord(w.records))
		}
	}
	for _, c := range clients {
		rs := results[c.name]
		rps := make([]float64, len(rs))
		cpu := make([]float64, len(rs))
		for i, r := range rs {
			rps[i] = float64(w.records) / r.wall.Seconds()
			cpu[i] = r.cpuPerRecord(w.records)
		}
		fmt.Printf("%-6s median: %9.0f records/s  %5.2f µs CPU per record\n", c.name, median(rps), median(cpu))
	}
}

// workload is what one run writes.
type workload struct {
	records, senders int
	partitions       int32
	key, value       int
	flush            time.Duration
}

// each calls fn for the records of sender s: its share of the run, with the
// partition and key of record i.
func (w workload) each(s int, fn func(partition int32, key, value []byte)) {
	value := make([]byte, w.value)
	for i := range value {
		value[i] = 'v'
	}
	for i := s; i < w.records; i += w.senders {
		key := fmt.Appendf(make([]byte, 0, w.key), "%0*d", w.key, i)
		fn(int32(i)%w.partitions, key, value)
	}
}

// result is one run's wall time and the process's CPU time during it.
type result struct {
	wall, cpu time.Duration
}

func (r result) cpuPerRecord(n int) float64 { return float64(r.cpu.Microseconds()) / float64(n) }

func runSarama(brokers []string, topic string, w workload) (result, error) {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	sc.Producer.Flush.Frequency = w.flush
	sc.Producer.Flush.Bytes = 1 << 20
	sc.ChannelBufferSize = 16 << 10
	p, err := sarama.NewAsyncProducer(brokers, sc)
	if err != nil {
		return result{}, err
	}
	defer p.Close()
	cpu0, start := cpuNow(), time.Now()
	var acked sync.WaitGroup
	var firstErr error
	acked.Go(func() {
		for range w.records {
			select {
			case <-p.Successes():
			case e := <-p.Errors():
				if firstErr == nil {
					firstErr = e.Err
				}
			}
		}
	})
	var sent sync.WaitGroup
	for s := range w.senders {
		sent.Go(func() {
			w.each(s, func(part int32, key, value []byte) {
				p.Input() <- &sarama.ProducerMessage{Topic: topic, Partition: part, Key: sarama.ByteEncoder(key), Value: sarama.ByteEncoder(value)}
			})
		})
	}
	sent.Wait()
	acked.Wait()
	return result{wall: time.Since(start), cpu: cpuNow() - cpu0}, firstErr
}

func runKgo(brokers []string, topic string, w workload) (result, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(w.flush), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(16<<10))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	cpu0, start := cpuNow(), time.Now()
	var acked sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	var sent sync.WaitGroup
	for s := range w.senders {
		sent.Go(func() {
			w.each(s, func(part int32, key, value []byte) {
				acked.Add(1)
				cl.Produce(context.Background(), &kgo.Record{Topic: topic, Partition: part, Key: key, Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
					acked.Done()
				})
			})
		})
	}
	sent.Wait()
	acked.Wait()
	return result{wall: time.Since(start), cpu: cpuNow() - cpu0}, firstErr
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func createTopic(brokers []string, topic string, partitions int32) error {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin(brokers, sc)
	if err != nil {
		return err
	}
	defer admin.Close()
	return admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
}

func deleteTopic(brokers []string, topic string) {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	if admin, err := sarama.NewClusterAdmin(brokers, sc); err == nil {
		_ = admin.DeleteTopic(topic)
		_ = admin.Close()
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "producer:", err)
	os.Exit(1)
}
