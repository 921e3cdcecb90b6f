package stream_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// Misuses of the topology API fail at Build (or when the topology is run)
// with an error that says what is wrong, instead of a crash or a hang.
func TestBuildRejectsMisuse(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *stream.Builder)
		want  string
	}{
		{
			name: "empty source topic",
			build: func(b *stream.Builder) {
				stream.Source(b, "", stream.String(), stream.String()).To("out", stream.String(), stream.String())
			},
			want: "needs a topic name",
		},
		{
			name: "empty sink topic",
			build: func(b *stream.Builder) {
				stream.Source(b, "in", stream.String(), stream.String()).To("", stream.String(), stream.String())
			},
			want: "a sink after KSTREAM-SOURCE-0000000000 needs a topic name",
		},
		{
			name: "nil processor supplier",
			build: func(b *stream.Builder) {
				stream.Process[string, string, string, string](stream.Source(b, "in", stream.String(), stream.String()), "mine", nil)
			},
			want: "processor mine has a nil supplier",
		},
		{
			name: "sink writes its own source topic",
			build: func(b *stream.Builder) {
				stream.Source(b, "in", stream.String(), stream.String()).Filter(func(string, string) bool { return true }).To("in", stream.String(), stream.String())
			},
			want: `writes topic "in", which the topology reads again upstream of it`,
		},
		{
			name: "two sub-topologies feed each other",
			build: func(b *stream.Builder) {
				stream.Source(b, "a", stream.String(), stream.String()).To("b", stream.String(), stream.String())
				stream.Source(b, "b", stream.String(), stream.String()).To("a", stream.String(), stream.String())
			},
			want: "its records would loop forever",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			tc.build(b)
			top, err := b.Build()
			require.ErrorIs(t, err, stream.ErrInvalidTopology)
			require.ErrorContains(t, err, tc.want)
			require.Nil(t, top)
		})
	}
}

// A pipeline through a user topic (a -> x, then x -> b) is no loop.
func TestBuildAcceptsPipelineThroughTopic(t *testing.T) {
	b := stream.NewBuilder()
	stream.Source(b, "a", stream.String(), stream.String()).To("x", stream.String(), stream.String())
	stream.Source(b, "x", stream.String(), stream.String()).To("b", stream.String(), stream.String())
	_, err := b.Build()
	require.NoError(t, err)
}

func TestNilTopology(t *testing.T) {
	_, err := stream.NewApp(nil, stream.Brokers("127.0.0.1:1"), stream.ApplicationID("app"))
	require.ErrorIs(t, err, stream.ErrInvalidTopology)
	require.ErrorContains(t, err, "the topology is nil")
	_, err = stream.NewLocalRunner(nil)
	require.ErrorIs(t, err, stream.ErrInvalidTopology)
	_, err = streamtest.New(nil)
	require.ErrorIs(t, err, stream.ErrInvalidTopology)
}

// procFuncs is a Processor made of functions, for the misuse tests.
type procFuncs struct {
	init    func(ctx stream.ProcessorContext[string, string]) error
	process func(ctx stream.ProcessorContext[string, string], rec stream.Record[string, string]) error
}

func (p *procFuncs) Init(ctx stream.ProcessorContext[string, string]) error {
	if p.init == nil {
		return nil
	}
	return p.init(ctx)
}

func (p *procFuncs) Process(ctx stream.ProcessorContext[string, string], rec stream.Record[string, string]) error {
	if p.process == nil {
		ctx.Forward(rec)
		return nil
	}
	return p.process(ctx, rec)
}

func (p *procFuncs) Close() error { return nil }

func processTopology(t *testing.T, supplier func() stream.Processor[string, string, string, string]) *stream.Topology {
	t.Helper()
	b := stream.NewBuilder()
	stream.Process(stream.Source(b, "in", stream.String(), stream.String()), "mine", supplier).To("out", stream.String(), stream.String())
	top, err := b.Build()
	require.NoError(t, err)
	return top
}

func TestSupplierReturningNil(t *testing.T) {
	top := processTopology(t, func() stream.Processor[string, string, string, string] { return nil })
	_, err := streamtest.New(top)
	require.ErrorIs(t, err, stream.ErrInvalidTopology)
	require.ErrorContains(t, err, "the supplier of processor mine returned nil")
}

func TestForwardInInitIsAnError(t *testing.T) {
	for _, method := range []string{"Forward", "ForwardTo"} {
		t.Run(method, func(t *testing.T) {
			top := processTopology(t, func() stream.Processor[string, string, string, string] {
				return &procFuncs{init: func(ctx stream.ProcessorContext[string, string]) error {
					if method == "Forward" {
						ctx.Forward(stream.Record[string, string]{Key: "k", Value: "from Init"})
					} else {
						ctx.ForwardTo("KSTREAM-SINK-0000000001", stream.Record[string, string]{Key: "k", Value: "from Init"})
					}
					return nil
				}}
			})
			_, err := streamtest.New(top)
			require.ErrorContains(t, err, "stream: node mine: "+method+" called in Init")
		})
	}
}

// A processor that keeps the context it got in Init may forward with it
// later, from a punctuation.
func TestForwardFromPunctuationWithInitContext(t *testing.T) {
	top := processTopology(t, func() stream.Processor[string, string, string, string] {
		return &procFuncs{init: func(ctx stream.ProcessorContext[string, string]) error {
			ctx.Schedule(time.Second, stream.WallClockTime, func(time.Time) error {
				ctx.Forward(stream.Record[string, string]{Key: "tick", Value: "t"})
				return nil
			})
			return nil
		}}
	})
	d, err := streamtest.New(top)
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	require.NoError(t, d.AdvanceWallClock(time.Second))
	kvs, err := streamtest.NewOutputTopic(d, "out", stream.String(), stream.String()).ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []stream.KeyValue[string, string]{{Key: "tick", Value: "t"}}, kvs)
}

// A panic in user code comes out as an error naming the node and, while a
// record is processed, the record's position.
func TestPanicBecomesError(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name  string
		build func(b *stream.Builder)
		node  string
		topic string // "" when the error is not a ProcessError (Init)
		step  func(d *streamtest.Driver) error
	}{
		{
			name: "DSL function",
			build: func(b *stream.Builder) {
				stream.Source(b, "in", stream.String(), stream.String()).
					Filter(func(_, v string) bool { panic(boom) }).To("out", stream.String(), stream.String())
			},
			node: "KSTREAM-FILTER-0000000001", topic: "in",
		},
		{
			name: "aggregator",
			build: func(b *stream.Builder) {
				stream.Aggregate(stream.GroupByKey(stream.Source(b, "in", stream.String(), stream.String())),
					func() int { return 0 }, func(string, string, int) int { panic("aggregator bug") }, stream.Materialized[string, int]{})
			},
			node: "KSTREAM-AGGREGATE-0000000001", topic: "in",
		},
		{
			name: "timestamp extractor",
			build: func(b *stream.Builder) {
				stream.Source(b, "in", stream.String(), stream.String(),
					stream.WithTimestampExtractor(func(stream.Record[string, string]) time.Time { panic(boom) }),
					stream.WithSourceName[string, string]("src")).To("out", stream.String(), stream.String())
			},
			node: "src", topic: "in",
		},
		{
			name: "punctuation",
			build: func(b *stream.Builder) {
				stream.Process(stream.Source(b, "in", stream.String(), stream.String()), "mine", func() stream.Processor[string, string, string, string] {
					return &procFuncs{init: func(ctx stream.ProcessorContext[string, string]) error {
						ctx.Schedule(time.Second, stream.WallClockTime, func(time.Time) error { panic(boom) })
						return nil
					}}
				}).To("out", stream.String(), stream.String())
			},
			node: "mine", topic: "punctuation",
			step: func(d *streamtest.Driver) error { return d.AdvanceWallClock(time.Second) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			tc.build(b)
			top, err := b.Build()
			require.NoError(t, err)
			d, err := streamtest.New(top)
			require.NoError(t, err)
			defer func() { _ = d.Close() }()
			step := tc.step
			if step == nil {
				step = func(d *streamtest.Driver) error {
					return streamtest.NewInputTopic(d, "in", stream.String(), stream.String()).Pipe("k", "v")
				}
			}
			err = step(d)
			require.Error(t, err)
			require.ErrorContains(t, err, "panic")
			var pe *stream.ProcessError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, tc.node, pe.Node)
			require.Equal(t, tc.topic, pe.Topic)
			if tc.topic == "in" {
				require.Equal(t, int64(0), pe.Offset)
			}
		})
	}
}

func TestPanicInInitBecomesError(t *testing.T) {
	top := processTopology(t, func() stream.Processor[string, string, string, string] {
		return &procFuncs{init: func(stream.ProcessorContext[string, string]) error { panic("init bug") }}
	})
	_, err := streamtest.New(top)
	require.ErrorContains(t, err, "stream: node mine: Init: panic: init bug")
}

// In the Kafka runtime a panic ends Run with the node and the record's
// topic, partition and offset.
func TestIntegrationPanicNamesRecord(t *testing.T) {
	brokers := kafkatest.EmbeddedBrokers(t)
	in, out := kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out")
	kafkatest.CreateTopic(t, brokers, in, 1)
	kafkatest.CreateTopic(t, brokers, out, 1)
	b := stream.NewBuilder()
	stream.Source(b, in, stream.String(), stream.String()).
		Filter(func(_, v string) bool {
			if v == "bad" {
				panic("cannot filter " + v)
			}
			return true
		}).To(out, stream.String(), stream.String())
	top, err := b.Build()
	require.NoError(t, err)
	kafkatest.ProduceStrings(t, brokers, in, []kafkatest.KV{{Key: "k", Value: "ok"}, {Key: "k", Value: "ok"}, {Key: "k", Value: "bad"}})
	app, err := stream.NewApp(top, stream.Brokers(brokers...), stream.ApplicationID(kafkatest.UniqueName(t, "app")),
		stream.RestartOnFailure(0, time.Second), stream.CommitInterval(100*time.Millisecond))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = app.Run(ctx)
	require.Error(t, err)
	var pe *stream.ProcessError
	require.ErrorAs(t, err, &pe, "%v", err)
	require.Equal(t, "KSTREAM-FILTER-0000000001", pe.Node)
	require.Equal(t, in, pe.Topic)
	require.Equal(t, int32(0), pe.Partition)
	require.Equal(t, int64(2), pe.Offset)
	require.True(t, strings.Contains(err.Error(), "panic: cannot filter bad"), err.Error())
}

func TestNewViewNeedsBrokersAndApplicationID(t *testing.T) {
	_, err := stream.NewView("counts", stream.String(), stream.Int64())
	require.ErrorContains(t, err, "ApplicationID is required")
	require.ErrorContains(t, err, "Brokers is required")
	_, err = stream.NewView[string, int64]("", nil, nil, stream.Brokers("127.0.0.1:1"), stream.ApplicationID("app"))
	require.ErrorContains(t, err, "a view needs a store name")
}
