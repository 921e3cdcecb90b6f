package stream_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// A word count: split lines into words, group by word (through a repartition
// topic), count, and write the counts to a topic.
func Example_dsl() {
	b := stream.NewBuilder()
	lines := stream.Source(b, "lines", stream.String(), stream.String())
	words := stream.FlatMapValues(lines, func(_ string, line string) []string {
		return strings.Fields(strings.ToLower(line))
	})
	counts := stream.Count(
		stream.GroupBy(words, func(_, w string) string { return w }, stream.Grouped[string, string]{Name: "by-word", KeySerde: stream.String(), ValueSerde: stream.String()}),
		stream.Materialized[string, int64]{StoreName: "word-counts"},
	)
	counts.ToStream().To("word-counts", stream.String(), stream.Int64())
	top, err := b.Build()
	if err != nil {
		panic(err)
	}

	d, err := streamtest.New(top)
	if err != nil {
		panic(err)
	}
	defer d.Close()
	in := streamtest.NewInputTopic(d, "lines", stream.String(), stream.String())
	_ = in.Pipe("", "the quick fox")
	_ = in.Pipe("", "The lazy dog")
	out := streamtest.NewOutputTopic(d, "word-counts", stream.String(), stream.Int64())
	kvs, _ := out.ReadKeyValues()
	for _, kv := range kvs {
		fmt.Println(kv.Key, kv.Value)
	}
	// Output:
	// the 1
	// quick 1
	// fox 1
	// the 2
	// lazy 1
	// dog 1
}

// dedupe forwards a key only the first time it is seen, remembering seen keys
// in a state store. It is a custom Processor with a store.
type dedupe struct {
	seen stream.KeyValueStore[string, bool]
}

func (p *dedupe) Init(ctx stream.ProcessorContext[string, string]) error {
	s, err := stream.GetKeyValueStore[string, bool](ctx, "seen")
	p.seen = s
	return err
}

func (p *dedupe) Process(ctx stream.ProcessorContext[string, string], rec stream.Record[string, string]) error {
	_, found, err := p.seen.Get(rec.Key)
	if err != nil || found {
		return err
	}
	if err := p.seen.Put(rec.Key, true); err != nil {
		return err
	}
	ctx.Forward(rec)
	return nil
}

func (p *dedupe) Close() error { return nil }

// A custom Processor with a state store: dedupe forwards the first record of
// each key and drops the others. (Example_streamtest shows a processor with a
// wall-clock punctuation.)
func Example_processor() {
	b := stream.NewBuilder()
	b.AddStore(stream.KeyValueStoreBuilder("seen", stream.String(), stream.JSON[bool]()))
	src := stream.Source(b, "events", stream.String(), stream.String())
	unique := stream.Process(src, "dedupe", func() stream.Processor[string, string, string, string] {
		return &dedupe{}
	}, "seen")
	unique.To("unique-events", stream.String(), stream.String())
	top, err := b.Build()
	if err != nil {
		panic(err)
	}
	fmt.Print(top.Describe())

	d, _ := streamtest.New(top)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "events", stream.String(), stream.String())
	for _, id := range []string{"a", "b", "a", "c", "b"} {
		_ = in.Pipe(id, "event "+id)
	}
	out := streamtest.NewOutputTopic(d, "unique-events", stream.String(), stream.String())
	kvs, _ := out.ReadKeyValues()
	fmt.Println(kvs)
	// Output:
	// Topologies:
	//    Sub-topology: 0
	//     Source: KSTREAM-SOURCE-0000000000 (topics: [events])
	//       --> dedupe
	//       <-- none
	//     Processor: dedupe (stores: [seen])
	//       --> KSTREAM-SINK-0000000001
	//       <-- KSTREAM-SOURCE-0000000000
	//     Sink: KSTREAM-SINK-0000000001 (topic: unique-events)
	//       --> none
	//       <-- dedupe
	//
	// [{a event a} {b event b} {c event c}]
}

// streamtest controls time: a wall-clock punctuation fires only when the test
// advances the clock, and stores can be inspected.
func Example_streamtest() {
	b := stream.NewBuilder()
	src := stream.Source(b, "clicks", stream.String(), stream.String())
	stream.Count(stream.GroupByKey(src), stream.Materialized[string, int64]{StoreName: "clicks-per-user"})
	// Every 10 s of wall-clock time, report how many clicks arrived since the last report.
	report := stream.Process(src, "reporter", func() stream.Processor[string, string, string, int64] {
		return &clickReporter{}
	})
	report.To("click-reports", stream.String(), stream.Int64())
	top, err := b.Build()
	if err != nil {
		panic(err)
	}
	d, _ := streamtest.New(top, stream.StartTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	defer d.Close()
	in := streamtest.NewInputTopic(d, "clicks", stream.String(), stream.String())
	for _, u := range []string{"ann", "bob", "ann", "ann"} {
		_ = in.Pipe(u, "/home")
	}
	out := streamtest.NewOutputTopic(d, "click-reports", stream.String(), stream.Int64())
	recs, _ := out.ReadKeyValues()
	fmt.Println("before the tick:", recs)
	_ = d.AdvanceWallClock(10 * time.Second)
	recs, _ = out.ReadKeyValues()
	fmt.Println("after the tick:", recs)

	store := streamtest.KeyValueStore[string, int64](d, "clicks-per-user", stream.String())
	it, _ := store.All()
	defer it.Close()
	for it.Next() {
		fmt.Println(it.Key(), it.Value())
	}
	// Output:
	// before the tick: []
	// after the tick: [{clicks 4}]
	// ann 3
	// bob 1
}

type clickReporter struct{ n int64 }

func (p *clickReporter) Init(ctx stream.ProcessorContext[string, int64]) error {
	ctx.Schedule(10*time.Second, stream.WallClockTime, func(ts time.Time) error {
		ctx.Forward(stream.Record[string, int64]{Key: "clicks", Value: p.n, Timestamp: ts})
		p.n = 0
		return nil
	})
	return nil
}

func (p *clickReporter) Process(stream.ProcessorContext[string, int64], stream.Record[string, string]) error {
	p.n++
	return nil
}

func (p *clickReporter) Close() error { return nil }
