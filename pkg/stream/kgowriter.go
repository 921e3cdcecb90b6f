package stream

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// kgoWriter writes an at-least-once App's output records — results,
// changelog writes, dead letters — with franz-go's kgo client instead of
// sarama's AsyncProducer. The guarantees are the same (idempotent, acks from
// every in-sync replica, the partition the runtime chose, retries for as
// long as sarama's were configured to last); what changes is the cost:
// `go run ./bench/producer` measured 1.5–1.6 µs of CPU per record against
// sarama's 5.0–5.4 µs (docs/performance.md). Exactly-once keeps sarama's
// transactional producer: kgo has no public call that adds the offsets of a
// group it does not manage to a transaction.
type kgoWriter struct {
	cl *kgo.Client
	// inflight counts records handed to cl whose promise has not run.
	inflight sync.WaitGroup
	ack      func(*ackCtx, int64, error)
	once     sync.Once
	done     chan struct{}
}

// kgoBufferedRecords bounds the records kgo buffers before Produce blocks
// (kgo's default is 10,000). ProducerBufferBytes bounds the bytes; this only
// stops many tiny records from piling up when that budget is off.
const kgoBufferedRecords = 100_000

// kgoOptions maps the parts of sc an App's writes depend on to kgo options.
// ok is false when sc asks for something only sarama's producer does (a SASL
// mechanism other than PLAIN and SCRAM, a proxy, a custom dialer); the App
// then writes through sarama as before.
func kgoOptions(brokers []string, sc *sarama.Config) (opts []kgo.Opt, why string) {
	opts = []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID(sc.ClientID),
		kgo.DisableClientMetrics(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(sc.Producer.Flush.Frequency),
		kgo.MaxBufferedRecords(kgoBufferedRecords),
		kgo.ProduceRequestTimeout(sc.Producer.Timeout),
		kgo.DialTimeout(sc.Net.DialTimeout),
		// sarama's producer retried Retry.Max times, Retry.Backoff apart,
		// before it failed a record (and the App with it): kgo rides out a
		// broker restart as long. Not kgo.RecordDeliveryTimeout: kgo counts
		// it from the record's timestamp, and ours carry event time, hours
		// or years old on a replay, so every record would time out at once.
		kgo.RecordRetries(sc.Producer.Retry.Max),
		kgo.RetryBackoffFn(func(int) time.Duration { return sc.Producer.Retry.Backoff }),
		kgo.UnknownTopicRetries(sc.Producer.Retry.Max),
		// A retriable partition error (NOT_ENOUGH_REPLICAS, a leader that
		// moved) makes kgo refresh its metadata before the retry, and by
		// default it refreshes at most once per 5 s: each retry of such an
		// error waited that long (TestProduceFailureFailsRuntime saw 5 s
		// between tries). The Java producer and sarama refresh after their
		// retry backoff.
		kgo.MetadataMinAge(max(sc.Producer.Retry.Backoff, 100*time.Millisecond)),
	}
	if sc.Producer.MaxMessageBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(sc.Producer.MaxMessageBytes)))
	}
	switch sc.Producer.Compression {
	case sarama.CompressionNone:
		// kgo's own default is snappy; sarama's and the Java producer's
		// is none.
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case sarama.CompressionGZIP:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case sarama.CompressionSnappy:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case sarama.CompressionLZ4:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case sarama.CompressionZSTD:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		return nil, fmt.Sprintf("compression codec %v", sc.Producer.Compression)
	}
	if sc.Net.Proxy.Enable || sc.Net.LocalAddr != nil {
		return nil, "Net.Proxy or Net.LocalAddr"
	}
	if sc.Net.TLS.Enable {
		tc := sc.Net.TLS.Config
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		opts = append(opts, kgo.DialTLSConfig(tc.Clone()))
	}
	if sc.Net.SASL.Enable {
		var m sasl.Mechanism
		user, pass := sc.Net.SASL.User, sc.Net.SASL.Password
		switch strings.ToUpper(string(sc.Net.SASL.Mechanism)) {
		case "", SASLPlain:
			m = plain.Auth{User: user, Pass: pass}.AsMechanism()
		case SASLScramSHA256:
			m = scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
		case SASLScramSHA512:
			m = scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
		default:
			return nil, fmt.Sprintf("SASL mechanism %s", sc.Net.SASL.Mechanism)
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, ""
}

// newKGOWriter connects a kgoWriter; ack runs once per record written, in
// order per partition, never concurrently with itself.
func newKGOWriter(opts []kgo.Opt, ack func(*ackCtx, int64, error)) (*kgoWriter, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &kgoWriter{cl: cl, ack: ack, done: make(chan struct{})}, nil
}

// write hands one record to kgo. It blocks while kgo holds
// kgoBufferedRecords unacknowledged records.
func (w *kgoWriter) write(r *kgo.Record, ac *ackCtx) {
	w.inflight.Add(1)
	w.cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
		w.ack(ac, r.Offset, err)
		w.inflight.Done()
	})
}

// close is sarama's AsyncClose: in the background it writes what is
// buffered (retrying as configured), closes the client, and closes done
// once every record's acknowledgement or error has been handled.
func (w *kgoWriter) close() {
	w.once.Do(func() {
		go func() {
			defer close(w.done)
			_ = w.cl.Flush(context.Background())
			w.cl.Close()
			w.inflight.Wait()
		}()
	})
}

// kgoLogger writes kgo's log lines to the App's logger at debug level,
// with kgo's own level as kgo_level: kgo's warnings (a broker it cannot
// reach, a produce request it retries) are what the runtime reports itself
// when they matter (a commit that waits for acknowledgements, a failure),
// so they are detail for debugging, as the rest. kgo's debug level (every
// request) is not passed on: at a few thousand requests per second it
// would drown everything else.
type kgoLogger struct{ l *slog.Logger }

// Level implements kgo.Logger: info while the logger takes debug lines,
// none otherwise (kgo then formats nothing).
func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelNone
}

// Log implements kgo.Logger.
func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	k.l.Debug(msg, append([]any{slog.String("kgo_level", level.String())}, keyvals...)...)
}
