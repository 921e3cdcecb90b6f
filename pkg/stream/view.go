package stream

import (
	"context"
	"fmt"
	"hash"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
)

// View is a read-only copy of a whole state store, kept current by following
// the store's changelog topic with a goka.View. Unlike QueryStore it holds every
// partition, so any process (an HTTP service, a dashboard) can query any key
// without being part of the application's consumer group. It is eventually
// consistent: it lags the application by the changelog's replication delay.
type View[K, V any] struct {
	v  *goka.View
	ks Serde[K]
	vs Serde[V]
}

// NewView follows the changelog of store in the application named by the
// options, which are an App's: [Brokers] and [ApplicationID] are required,
// [SaramaConfig] and [WithSecurity] apply to the view's own sarama
// configuration, and the others are ignored. The view keeps its copy in
// memory.
func NewView[K, V any](store string, keySerde Serde[K], valueSerde Serde[V], opts ...Opt) (*View[K, V], error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(true); err != nil {
		return nil, err
	}
	if store == "" || keySerde == nil || valueSerde == nil {
		return nil, fmt.Errorf("stream: a view needs a store name and its key and value serdes")
	}
	brokers, appID := cfg.brokers, cfg.appID
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Consumer.Return.Errors = true
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	if cfg.sarama != nil {
		cfg.sarama(sc)
	}
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication = 1 // never creates the topic: the application does
	changelog := appID + "-" + store + "-changelog"
	partitions, err := topicPartitions(brokers, sc, changelog)
	if err != nil {
		return nil, fmt.Errorf("stream: view of %s: %w", store, err)
	}
	v, err := goka.NewView(brokers, goka.Table(changelog), envelopeCodec[V]{vs: valueSerde},
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc)),
		goka.WithViewTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(sc, tm)),
		goka.WithViewStorageBuilder(storage.MemoryBuilder()),
		goka.WithViewHasher(func() hash.Hash32 { return &partitionHasher{n: partitions} }),
		goka.WithViewClientID(appID+"-view"),
	)
	if err != nil {
		return nil, fmt.Errorf("stream: view of %s: %w", store, err)
	}
	return &View[K, V]{v: v, ks: keySerde, vs: valueSerde}, nil
}

// Run follows the changelog until ctx is cancelled.
func (v *View[K, V]) Run(ctx context.Context) error { return v.v.Run(ctx) }

// Recovered reports whether the view has caught up with the changelog once.
func (v *View[K, V]) Recovered() bool { return v.v.Recovered() }

// WaitRunning returns a channel closed when the view has caught up.
func (v *View[K, V]) WaitRunning() <-chan struct{} { return v.v.WaitRunning() }

// Get returns the value of key. It requires keys to be partitioned with Kafka's
// default (murmur2) partitioner, as the application's repartition topics are.
func (v *View[K, V]) Get(key K) (V, bool, error) {
	var zero V
	kb, err := v.ks.Serialize(key)
	if err != nil {
		return zero, false, err
	}
	val, err := v.v.Get(string(kb))
	if err != nil || val == nil {
		return zero, false, err
	}
	return val.(V), true, nil
}

// All returns a snapshot of every key and value in the view.
func (v *View[K, V]) All() ([]KeyValue[K, V], error) {
	it, err := v.v.Iterator()
	if err != nil {
		return nil, err
	}
	defer it.Release()
	var out []KeyValue[K, V]
	for it.Next() {
		k, err := v.ks.Deserialize([]byte(it.Key()))
		if err != nil {
			return nil, err
		}
		val, err := it.Value()
		if err != nil {
			return nil, err
		}
		if val == nil {
			continue
		}
		out = append(out, KeyValue[K, V]{Key: k, Value: val.(V)})
	}
	return out, it.Err()
}

// topicPartitions returns the number of partitions of topic, which the
// view's hasher needs.
func topicPartitions(brokers []string, sc *sarama.Config, topic string) (int32, error) {
	client, err := sarama.NewClient(brokers, sc)
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

// envelopeCodec is the goka codec of changelog values: it strips the dedup
// envelope and decodes the user's value.
type envelopeCodec[V any] struct{ vs Serde[V] }

func (c envelopeCodec[V]) Encode(any) ([]byte, error) {
	return nil, fmt.Errorf("stream: views are read-only")
}

func (c envelopeCodec[V]) Decode(b []byte) (any, error) {
	env, err := decodeEnvelope(b)
	if err != nil {
		return nil, err
	}
	return c.vs.Deserialize(env.value)
}
