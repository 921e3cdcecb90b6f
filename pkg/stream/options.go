package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
)

// Opt configures an App or a LocalRunner.
type Opt interface{ apply(*config) }

type optFunc func(*config)

func (f optFunc) apply(c *config) { f(c) }

type config struct {
	onState func(old, new State)
	// ackTimeout and producerRetries replace defaultAckTimeout and the
	// producer's retry floor when set (tests only, see export_test.go).
	ackTimeout        time.Duration
	producerRetries   int
	brokers           []string
	appID             string
	sarama            func(*sarama.Config) // saramaFn, then security; see setSarama
	saramaFn          func(*sarama.Config)
	security          *Security
	securityErr       error
	logger            *slog.Logger
	stateDir          string
	commitInterval    time.Duration
	badAction         DeserializationAction
	dlqTopic          string
	replication       int16 // with replicationSet; see topicReplication
	replicationSet    bool
	minISR            int16 // with minISRSet
	minISRSet         bool
	partitions        int32
	wallClockInterval time.Duration
	startTime         time.Time
	restoreTimeout    time.Duration
	exactlyOnce       bool
	saramaProducer    bool
	cacheMaxBytes     int64
	bufferBytes       int64         // ProducerBufferBytes; 0: unbounded
	shutdownTimeout   time.Duration // see lifecycle.go
	restart           restartPolicy
	group             groupConfig  // SessionTimeout, HeartbeatInterval, RebalanceTimeout, GroupInstanceID
	warmup            warmupConfig // AcceptableRecoveryLag, MaxWarmupReplicas, ProbingRebalanceInterval (warmup.go)
}

func defaultConfig() config {
	return config{
		logger:            slog.Default(),
		commitInterval:    time.Second,
		replication:       -1,
		wallClockInterval: 50 * time.Millisecond,
		partitions:        1,
		startTime:         time.Unix(0, 0).UTC(),
		restoreTimeout:    5 * time.Minute,
		cacheMaxBytes:     DefaultCacheMaxBytes,
		bufferBytes:       DefaultProducerBufferBytes,
		group:             defaultGroupConfig(),
		warmup:            defaultWarmupConfig(),
	}
}

func (c *config) validate(needBrokers bool) error {
	var errs []error
	if c.appID == "" {
		errs = append(errs, errors.New("ApplicationID is required"))
	}
	if needBrokers && len(c.brokers) == 0 {
		errs = append(errs, errors.New("Brokers is required"))
	}
	if c.badAction == SendToDeadLetter && c.dlqTopic == "" {
		errs = append(errs, errors.New("SendToDeadLetter needs a dead-letter topic"))
	}
	if c.commitInterval <= 0 {
		errs = append(errs, fmt.Errorf("CommitInterval must be positive, got %v", c.commitInterval))
	}
	if c.partitions <= 0 {
		errs = append(errs, fmt.Errorf("Partitions must be positive, got %d", c.partitions))
	}
	errs = append(errs, c.group.validate()...)
	errs = append(errs, c.warmup.validate()...)
	if c.securityErr != nil {
		errs = append(errs, c.securityErr)
	}
	if err := c.validateReplication(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stream: invalid options: %w", err)
	}
	return nil
}

// Brokers sets the bootstrap brokers of the Kafka cluster.
func Brokers(addrs ...string) Opt { return optFunc(func(c *config) { c.brokers = addrs }) }

// ApplicationID names the application: it is the consumer group id and the
// prefix of its internal topics (repartition and changelog). Instances with the
// same id share the work.
func ApplicationID(id string) Opt { return optFunc(func(c *config) { c.appID = id }) }

// SaramaConfig lets the application adjust the sarama configuration of its own
// clients (TLS, SASL, client id, versions...). The runtime sets what its
// guarantees depend on (acks, idempotence, manual commits, isolation level)
// after fn runs, and [WithSecurity] settings after that. Each App has its own
// configuration; nothing is global. An at-least-once App writes through a
// franz-go client that takes its settings from this configuration (client
// id, TLS, SASL PLAIN and SCRAM, Producer.Compression, MaxMessageBytes,
// Timeout and Retry, Net.DialTimeout); see [SaramaProducer].
func SaramaConfig(fn func(*sarama.Config)) Opt {
	return optFunc(func(c *config) { c.saramaFn = fn; c.setSarama() })
}

// SaramaProducer makes an at-least-once App write its results, changelog
// records and dead letters through sarama's AsyncProducer, as earlier versions
// did, instead of franz-go's kgo client. Both are idempotent and wait for
// every in-sync replica; kgo costs about a third of the CPU per record (see
// docs/performance.md). An App uses sarama by itself when [SaramaConfig]
// sets what the kgo writer does not map (a SASL mechanism other than PLAIN
// and SCRAM, Net.Proxy, Net.LocalAddr), and always under [ExactlyOnce].
func SaramaProducer() Opt { return optFunc(func(c *config) { c.saramaProducer = true }) }

// WithSecurity secures every Kafka connection the runtime opens (consumer,
// producers, admin) with sec's TLS and SASL settings; see [Security]. It is
// applied after a [SaramaConfig] function, whatever the order of the
// options. Invalid settings make NewApp fail with an error that does not
// contain the password.
func WithSecurity(sec Security) Opt {
	return optFunc(func(c *config) {
		c.security, c.securityErr = &sec, sec.Validate()
		c.setSarama()
	})
}

// Logger sets the slog logger (default slog.Default()).
func Logger(l *slog.Logger) Opt { return optFunc(func(c *config) { c.logger = l }) }

// StateDir is where Persistent stores live (default: "stream-state" under
// the system's temp dir). Each store partition has its own folder
// <dir>/<application id>/<store>-<partition>, so applications with different
// ids can share a StateDir without sharing state.
func StateDir(dir string) Opt { return optFunc(func(c *config) { c.stateDir = dir }) }

// CommitInterval is how often processed offsets are committed, after the
// records they produced were acknowledged (default 1s). A shorter interval
// means less reprocessing after a crash.
func CommitInterval(d time.Duration) Opt { return optFunc(func(c *config) { c.commitInterval = d }) }

// OnDeserializationError chooses what happens to input records that cannot be
// decoded. dlqTopic is required for SendToDeadLetter.
func OnDeserializationError(action DeserializationAction, dlqTopic string) Opt {
	return optFunc(func(c *config) { c.badAction, c.dlqTopic = action, dlqTopic })
}

// ReplicationFactor of the internal topics the application creates
// (changelogs, repartition topics, the dead-letter topic). Default: 3 on a
// cluster of at least 3 brokers, else -1, the broker's
// default.replication.factor; see [DefaultReplication]. -1 asks for the
// broker's default explicitly; with n of 3 or more, min.insync.replicas
// becomes 2 unless [MinInSyncReplicas] says otherwise. n must be -1 or at
// least 1.
func ReplicationFactor(n int16) Opt {
	return optFunc(func(c *config) { c.replication, c.replicationSet = n, true })
}

// Partitions is the number of partitions of every topic in a LocalRunner (and
// so in streamtest); default 1.
func Partitions(n int32) Opt { return optFunc(func(c *config) { c.partitions = n }) }

// WallClockInterval is how often wall-clock punctuations are checked
// (default 50ms).
func WallClockInterval(d time.Duration) Opt {
	return optFunc(func(c *config) { c.wallClockInterval = d })
}

// DefaultCacheMaxBytes is the default [CacheMaxBytes].
const DefaultCacheMaxBytes = 10 << 20

// CacheMaxBytes bounds the record cache of an App (Kafka Streams'
// statestore.cache.max.bytes; default [DefaultCacheMaxBytes]). State stores
// apply every write at once, but hold back its changelog record until the
// next commit, so many updates of one key between two commits cost one
// changelog record. A store whose share would exceed the budget sends its
// held-back records early. Commits always send them first: offsets never
// cover state that is not in the changelog, so the no-double-count guarantee
// is unchanged. 0 turns the cache off (one changelog record per write).
func CacheMaxBytes(n int64) Opt { return optFunc(func(c *config) { c.cacheMaxBytes = max(n, 0) }) }

// DefaultProducerBufferBytes is the default [ProducerBufferBytes], the Java
// producer's buffer.memory default.
const DefaultProducerBufferBytes = 32 << 20

// ProducerBufferBytes bounds what an App has handed to its producer and
// Kafka has not acknowledged yet — results, changelog writes, dead letters
// — counting each record's key, value and headers (the Java producer's
// buffer.memory; default [DefaultProducerBufferBytes]). A task that would
// exceed it waits for acknowledgements, as a Java producer's send blocks.
// The bound keeps memory in check when a task emits much at once (a window
// of a million keys closing) and keeps short what a graceful shutdown must
// wait for. 0 removes it. Not applied with [ExactlyOnce] yet (see
// docs/design.md, "Producer buffer").
func ProducerBufferBytes(n int64) Opt { return optFunc(func(c *config) { c.bufferBytes = max(n, 0) }) }

// ExactlyOnce turns on Kafka transactions (Kafka Streams' exactly_once_v2):
// the records a commit interval produced — outputs, changelog writes,
// dead letters — and the input offsets they cover are committed atomically,
// and consumers reading with read_committed isolation never see a record
// twice, even after a crash. The offsets carry the consumer group generation
// (KIP-447), so an instance that lost its tasks cannot commit for them.
// Costs: a transaction per CommitInterval (choose ~100ms for low latency)
// and output becomes visible only when its transaction commits.
func ExactlyOnce() Opt { return optFunc(func(c *config) { c.exactlyOnce = true }) }

// StartTime is the initial wall-clock time of a LocalRunner (default the Unix
// epoch).
func StartTime(t time.Time) Opt { return optFunc(func(c *config) { c.startTime = t }) }
