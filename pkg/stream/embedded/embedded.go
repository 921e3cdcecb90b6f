package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultAddr is the listen address used when no [Addr] option is given: the
// loopback interface on a random free port.
const DefaultAddr = "127.0.0.1:0"

// DefaultNumPartitions is the partition count of automatically created topics
// (and of CreateTopics requests asking for the broker default) when no
// [DefaultPartitions] option is given. It matches num.partitions=1, the
// Apache Kafka default and the setting of scripts/kafka-local.sh.
const DefaultNumPartitions int32 = 1

// CleanupInterval is how often the broker compacts compacted topics and
// deletes records past a topic's retention.ms (Kafka's
// log.cleaner.backoff.ms).
const CleanupInterval = time.Minute

// clusterID is the cluster id the embedded broker reports in metadata.
const clusterID = "emostream-embedded"

type cfg struct {
	addr       string
	dataDir    string
	partitions int32
	logger     *slog.Logger
}

// Opt configures [Start]. Options are created with [Addr], [DataDir],
// [DefaultPartitions] and [Logger].
type Opt interface {
	apply(*cfg)
}

type opt struct{ fn func(*cfg) }

func (o opt) apply(c *cfg) { o.fn(c) }

// Addr sets the host:port the broker listens on and advertises to clients,
// overriding [DefaultAddr]. A port of 0 picks a random free port; a fixed
// port such as "127.0.0.1:9092" is used as is. When the host is empty or
// unspecified ("0.0.0.0", "::") the broker listens on all interfaces but
// advertises the loopback address, so clients on this machine can always
// follow the metadata it returns.
func Addr(hostport string) Opt {
	return opt{func(c *cfg) { c.addr = hostport }}
}

// DataDir makes the broker persist its state (topics, records, committed
// offsets, producer ids) to dir, which is created if needed. If dir already
// holds state from an earlier broker, [Start] reloads it. An empty dir, the
// default, keeps everything in memory.
func DataDir(dir string) Opt {
	return opt{func(c *cfg) { c.dataDir = dir }}
}

// DefaultPartitions sets the number of partitions for automatically created
// topics and for CreateTopics requests that ask for the broker default
// (NumPartitions -1), overriding [DefaultNumPartitions]. Values below 1 are
// rejected by [Start].
func DefaultPartitions(n int32) Opt {
	return opt{func(c *cfg) { c.partitions = n }}
}

// Logger routes the broker's internal logs to l. kfake's error, warn, info
// and debug messages map to the slog levels of the same name; note that at
// info level the broker logs every request. By default the broker logs
// nothing.
func Logger(l *slog.Logger) Opt {
	return opt{func(c *cfg) { c.logger = l }}
}

// Broker is a running in-process broker. It is safe for concurrent use.
type Broker struct {
	cluster *kfake.Cluster
	addrs   []string

	closeOnce sync.Once
}

// Start starts a single-node broker configured by opts and returns once it
// accepts connections. Topics are created automatically when a client asks
// for them in a metadata request (as Kafka's auto.create.topics.enable=true
// does), with [DefaultNumPartitions] partitions unless [DefaultPartitions]
// says otherwise. Call [Broker.Close] to stop it.
func Start(opts ...Opt) (*Broker, error) {
	c := cfg{addr: DefaultAddr, partitions: DefaultNumPartitions}
	for _, o := range opts {
		o.apply(&c)
	}
	if c.partitions < 1 {
		return nil, fmt.Errorf("embedded: DefaultPartitions must be at least 1, got %d", c.partitions)
	}
	host, port, err := net.SplitHostPort(c.addr)
	if err != nil {
		return nil, fmt.Errorf("embedded: invalid listen address %q: %w", c.addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("embedded: invalid port in listen address %q", c.addr)
	}

	// kfake always listens on 127.0.0.1 and advertises the listener's
	// address; we own the listener instead so any host works.
	listen := func(network, _ string) (net.Listener, error) {
		ln, err := net.Listen(network, c.addr)
		if err != nil {
			return nil, err
		}
		// compatListener rewrites the few answers Kafka's Java tools
		// cannot read (compat.go).
		return compatListener{newAdvertisedListener(ln, host)}, nil
	}

	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(listen),
		kfake.ClusterID(clusterID),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(c.partitions)),
		// Compaction and retention run every minute rather than kfake's
		// default hour, so compacted changelogs and topics with a
		// retention.ms stay small in a long-running process.
		kfake.BrokerConfigs(map[string]string{"log.cleaner.backoff.ms": strconv.FormatInt(CleanupInterval.Milliseconds(), 10)}),
	}
	if c.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(c.dataDir))
	}
	if c.logger != nil {
		kopts = append(kopts, kfake.WithLogger(slogAdapter{c.logger}))
	}

	cluster, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("embedded: starting broker on %s: %w", c.addr, err)
	}
	addrs := cluster.ListenAddrs()
	if len(addrs) == 0 {
		cluster.Close()
		return nil, errors.New("embedded: broker has no listener")
	}
	return &Broker{cluster: cluster, addrs: addrs}, nil
}

// Addrs returns the bootstrap addresses (host:port) clients should use. The
// slice is a copy and may be modified by the caller.
func (b *Broker) Addrs() []string {
	return append([]string(nil), b.addrs...)
}

// Cluster returns the underlying kfake cluster, for tests that need its
// lower-level controls (for example [kfake.Cluster.Compact] to force log
// compaction, or request interception). Most callers never need it.
func (b *Broker) Cluster() *kfake.Cluster {
	return b.cluster
}

// Close stops the broker and closes its listener. With [DataDir], the
// broker's state is flushed to disk first, so a later [Start] with the same
// directory sees everything that was acknowledged. Close is idempotent and
// always returns nil; the error result leaves room for failures to report.
func (b *Broker) Close() error {
	b.closeOnce.Do(b.cluster.Close)
	return nil
}

// advertisedListener wraps a listener so that its Addr, which kfake puts in
// metadata responses, is dialable even when listening on all interfaces.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

func newAdvertisedListener(ln net.Listener, host string) net.Listener {
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return ln
	}
	if host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			return ln // a concrete address: advertise what we bound
		}
	}
	// Go listens dual-stack on unspecified addresses, so IPv4 loopback
	// reaches it.
	adv := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tcp.Port}
	return advertisedListener{Listener: ln, addr: adv}
}

func (l advertisedListener) Addr() net.Addr { return l.addr }

// slogAdapter forwards kfake's printf-style logs to a slog.Logger.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Logf(level kfake.LogLevel, msg string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	case kfake.LogLevelInfo:
		lvl = slog.LevelInfo
	case kfake.LogLevelDebug:
		lvl = slog.LevelDebug
	default:
		return
	}
	ctx := context.Background()
	if !a.l.Enabled(ctx, lvl) {
		return
	}
	a.l.Log(ctx, lvl, fmt.Sprintf(msg, args...), "component", "kfake")
}
