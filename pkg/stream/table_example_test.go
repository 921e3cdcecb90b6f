package stream_test

import (
	"fmt"
	"time"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// run builds b, pipes records into topics with streamtest (a nil value is
// a tombstone) and prints what the "out" topic received.
func runExample(b *stream.Builder, out stream.Serde[string], pipe func(d *streamtest.Driver)) *streamtest.Driver {
	top, err := b.Build()
	if err != nil {
		panic(err)
	}
	d, err := streamtest.New(top, stream.StartTime(time.UnixMilli(0)))
	if err != nil {
		panic(err)
	}
	pipe(d)
	recs, err := streamtest.NewOutputTopic(d, "out", stream.String(), stream.TombstoneSerde(out)).ReadRecords()
	if err != nil {
		panic(err)
	}
	for _, r := range recs {
		v := "<tombstone>"
		if r.Value != nil {
			v = *r.Value
		}
		fmt.Printf("%s=%s @%d\n", r.Key, v, r.Timestamp.UnixMilli())
	}
	return d
}

func ptr[V any](v V) *V { return &v }

// A table read from a compacted topic, queried like any store; a tombstone
// deletes its key, and the table's stream shows the deletion.
func ExampleTableSource() {
	b := stream.NewBuilder()
	users := stream.TableSource(b, "users", stream.String(), stream.String(),
		stream.Materialized[string, string]{StoreName: "users"})
	stream.ToStreamWithTombstones(users).To("out", stream.String(), stream.TombstoneSerde(stream.String()))
	d := runExample(b, stream.String(), func(d *streamtest.Driver) {
		in := streamtest.NewInputTopic(d, "users", stream.String(), stream.TombstoneSerde(stream.String()))
		_ = in.PipeAt("alice", ptr("eu"), time.UnixMilli(1))
		_ = in.PipeAt("bob", ptr("us"), time.UnixMilli(2))
		_ = in.PipeAt("alice", nil, time.UnixMilli(3))
	})
	defer d.Close()
	store := streamtest.KeyValueStore[string, string](d, "users", stream.String())
	_, found, _ := store.Get("alice")
	region, _, _ := store.Get("bob")
	fmt.Println("alice found:", found, "bob:", region)
	// Output:
	// alice=eu @1
	// bob=us @2
	// alice=<tombstone> @3
	// alice found: false bob: us
}

// Users per region: a table regrouped by its values. A user who moves is
// subtracted from the old region and added to the new one.
func ExampleGroupTableBy() {
	b := stream.NewBuilder()
	users := stream.TableSource(b, "users", stream.String(), stream.String())
	perRegion := stream.CountTable(
		stream.GroupTableBy(users, func(_ string, region string) (string, string) { return region, region },
			stream.Grouped[string, string]{KeySerde: stream.String(), ValueSerde: stream.String()}),
		stream.Materialized[string, int64]{})
	stream.MapValues(perRegion.ToStream(), func(_ string, n int64) string { return fmt.Sprint(n) }).
		To("out", stream.String(), stream.String())
	d := runExample(b, stream.String(), func(d *streamtest.Driver) {
		in := streamtest.NewInputTopic(d, "users", stream.String(), stream.TombstoneSerde(stream.String()))
		_ = in.PipeAt("alice", ptr("eu"), time.UnixMilli(1))
		_ = in.PipeAt("bob", ptr("eu"), time.UnixMilli(2))
		_ = in.PipeAt("alice", ptr("us"), time.UnixMilli(3))
	})
	d.Close()
	// Output:
	// eu=1 @1
	// eu=2 @2
	// eu=1 @3
	// us=1 @3
}

// Enriching a stream of clicks with a table of users (a stream–table
// left join): the join sees the table as it is when each click arrives.
func ExampleLeftJoinTable() {
	b := stream.NewBuilder()
	users := stream.TableSource(b, "users", stream.String(), stream.String())
	clicks := stream.Source(b, "clicks", stream.String(), stream.String())
	stream.LeftJoinTable(clicks, users, func(page string, region *string) string {
		if region == nil {
			return page + " from ?"
		}
		return page + " from " + *region
	}).To("out", stream.String(), stream.String())
	d := runExample(b, stream.String(), func(d *streamtest.Driver) {
		u := streamtest.NewInputTopic(d, "users", stream.String(), stream.TombstoneSerde(stream.String()))
		c := streamtest.NewInputTopic(d, "clicks", stream.String(), stream.String())
		_ = c.PipeAt("alice", "/home", time.UnixMilli(1))
		_ = u.PipeAt("alice", ptr("eu"), time.UnixMilli(2))
		_ = c.PipeAt("alice", "/cart", time.UnixMilli(3))
	})
	d.Close()
	// Output:
	// alice=/home from ? @1
	// alice=/cart from eu @3
}

// Two tables joined on their keys (inner join): a result exists while both
// sides have a value; its timestamp is the larger of the two.
func ExampleJoinTables() {
	b := stream.NewBuilder()
	names := stream.TableSource(b, "names", stream.String(), stream.String())
	regions := stream.TableSource(b, "regions", stream.String(), stream.String())
	joined := stream.JoinTables(names, regions, func(name, region string) string { return name + "@" + region })
	stream.ToStreamWithTombstones(joined).To("out", stream.String(), stream.TombstoneSerde(stream.String()))
	d := runExample(b, stream.String(), func(d *streamtest.Driver) {
		n := streamtest.NewInputTopic(d, "names", stream.String(), stream.TombstoneSerde(stream.String()))
		r := streamtest.NewInputTopic(d, "regions", stream.String(), stream.TombstoneSerde(stream.String()))
		_ = n.PipeAt("u1", ptr("Alice"), time.UnixMilli(5))
		_ = r.PipeAt("u1", ptr("eu"), time.UnixMilli(3))
		_ = r.PipeAt("u1", nil, time.UnixMilli(9))
	})
	d.Close()
	// Output:
	// u1=Alice@eu @5
	// u1=<tombstone> @9
}

// Orders and payments joined within 10 s of each other (an outer
// stream–stream join): unmatched records come out once their window and
// grace period have passed.
func ExampleOuterJoinStreams() {
	b := stream.NewBuilder()
	orders := stream.Source(b, "orders", stream.String(), stream.String())
	payments := stream.Source(b, "payments", stream.String(), stream.String())
	show := func(s *string) string {
		if s == nil {
			return "-"
		}
		return *s
	}
	stream.OuterJoinStreams(orders, payments, func(o, p *string) string { return show(o) + "+" + show(p) },
		stream.JoinTimeDifferenceAndGrace(10*time.Second, 0), stream.StreamJoined[string, string, string]{}).
		To("out", stream.String(), stream.String())
	d := runExample(b, stream.String(), func(d *streamtest.Driver) {
		o := streamtest.NewInputTopic(d, "orders", stream.String(), stream.String())
		p := streamtest.NewInputTopic(d, "payments", stream.String(), stream.String())
		_ = o.PipeAt("o1", "book", time.UnixMilli(1_000))
		_ = p.PipeAt("o1", "paid", time.UnixMilli(4_000))
		_ = o.PipeAt("o2", "pen", time.UnixMilli(5_000))
		_ = p.PipeAt("o3", "paid", time.UnixMilli(30_000)) // closes o2's window
	})
	d.Close()
	// Output:
	// o1=book+paid @4000
	// o2=pen+- @5000
}
