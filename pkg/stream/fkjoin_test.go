package stream_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// fkOrdersTopology joins orders (order id -> "customer id:item") with
// customers (customer id -> name) on the customer id, inner and left, with
// the results in the stores "inner" and "left". An order without a
// customer id ("-:item") refers to nothing.
func fkOrdersTopology(t *testing.T) *stream.Topology {
	t.Helper()
	b := stream.NewBuilder()
	str := stream.String()
	orders := stream.TableSource(b, "orders", str, str)
	customers := stream.TableSource(b, "customers", str, str)
	customerOf := func(_ string, order string) (string, bool) {
		id, _, _ := strings.Cut(order, ":")
		return id, id != "-"
	}
	stream.JoinTablesOnForeignKey(orders, customers, customerOf,
		func(order, name string) string { return order + "/" + name },
		stream.ForeignKeyJoined[string, string]{Name: "orders-inner", Materialized: stream.Materialized[string, string]{StoreName: "inner", ValueSerde: str}})
	stream.LeftJoinTablesOnForeignKey(orders, customers, customerOf,
		func(order string, name *string) string {
			if name == nil {
				return order + "/?"
			}
			return order + "/" + *name
		},
		stream.ForeignKeyJoined[string, string]{Name: "orders-left", Materialized: stream.Materialized[string, string]{StoreName: "left", ValueSerde: str}})
	top, err := b.Build()
	require.NoError(t, err)
	return top
}

// fkState reads the stores "inner" and "left" for the orders o0..o(n-1).
func fkState(t *testing.T, d *streamtest.Driver, n int) (inner, left map[string]string) {
	t.Helper()
	inner, left = map[string]string{}, map[string]string{}
	for name, m := range map[string]map[string]string{"inner": inner, "left": left} {
		s := streamtest.KeyValueStore[string, string](d, name, stream.String())
		for i := range n {
			k := fmt.Sprintf("o%d", i)
			v, found, err := s.Get(k)
			require.NoError(t, err)
			if found {
				m[k] = v
			}
		}
	}
	return inner, left
}

// TestForeignKeyJoinAcrossPartitions runs the join on 4 partitions, where
// most orders and their customers live in different partitions, and checks
// the results after customers and orders are added, changed and deleted:
// every order follows its customer's changes; a deleted customer removes
// its orders from the inner join and leaves them without a name in the
// left join; an order moved to another customer or to none follows.
func TestForeignKeyJoinAcrossPartitions(t *testing.T) {
	d, err := streamtest.New(fkOrdersTopology(t), stream.Partitions(4), stream.StartTime(time.UnixMilli(0)))
	require.NoError(t, err)
	defer d.Close()
	str := stream.String()
	orders := streamtest.NewInputTopic(d, "orders", str, stream.TombstoneSerde(str))
	customers := streamtest.NewInputTopic(d, "customers", str, stream.TombstoneSerde(str))
	ts := time.UnixMilli(1)
	pipe := func(in *streamtest.InputTopic[string, *string], k string, v *string) {
		t.Helper()
		ts = ts.Add(time.Millisecond)
		require.NoError(t, in.PipeAt(k, v, ts))
	}
	const n = 20
	for i := range 5 {
		pipe(customers, fmt.Sprintf("c%d", i), ptr(fmt.Sprintf("name%d", i)))
	}
	wantInner, wantLeft := map[string]string{}, map[string]string{}
	for i := range n {
		order := fmt.Sprintf("c%d:item%d", i%5, i)
		pipe(orders, fmt.Sprintf("o%d", i), &order)
		wantInner[fmt.Sprintf("o%d", i)] = fmt.Sprintf("%s/name%d", order, i%5)
		wantLeft[fmt.Sprintf("o%d", i)] = fmt.Sprintf("%s/name%d", order, i%5)
	}
	inner, left := fkState(t, d, n)
	require.Equal(t, wantInner, inner)
	require.Equal(t, wantLeft, left)

	// A customer renamed: its four orders follow.
	pipe(customers, "c1", ptr("renamed"))
	// A customer deleted: its orders leave the inner join.
	pipe(customers, "c2", nil)
	// An order moved to another customer, one to a customer that does not
	// exist, one to no customer, one deleted.
	pipe(orders, "o0", ptr("c3:item0"))
	pipe(orders, "o5", ptr("c9:item5"))
	pipe(orders, "o10", ptr("-:item10"))
	pipe(orders, "o15", nil)
	for _, i := range []int{1, 6, 11, 16} {
		k := fmt.Sprintf("o%d", i)
		wantInner[k] = fmt.Sprintf("c1:item%d/renamed", i)
		wantLeft[k] = wantInner[k]
	}
	for _, i := range []int{2, 7, 12, 17} {
		k := fmt.Sprintf("o%d", i)
		delete(wantInner, k)
		wantLeft[k] = fmt.Sprintf("c2:item%d/?", i)
	}
	wantInner["o0"], wantLeft["o0"] = "c3:item0/name3", "c3:item0/name3"
	delete(wantInner, "o5")
	wantLeft["o5"] = "c9:item5/?"
	delete(wantInner, "o10")
	wantLeft["o10"] = "-:item10/?"
	delete(wantInner, "o15")
	delete(wantLeft, "o15")
	inner, left = fkState(t, d, n)
	require.Equal(t, wantInner, inner)
	require.Equal(t, wantLeft, left)

	// The deleted customer comes back, and one that did not exist appears.
	pipe(customers, "c2", ptr("back"))
	pipe(customers, "c9", ptr("new"))
	for _, i := range []int{2, 7, 12, 17} {
		k := fmt.Sprintf("o%d", i)
		wantInner[k] = fmt.Sprintf("c2:item%d/back", i)
		wantLeft[k] = wantInner[k]
	}
	wantInner["o5"], wantLeft["o5"] = "c9:item5/new", "c9:item5/new"
	inner, left = fkState(t, d, n)
	require.Equal(t, wantInner, inner)
	require.Equal(t, wantLeft, left)
	require.Equal(t, int64(1), d.DroppedRecords()["null foreign key"], "the inner join drops the order without a customer")
}

// TestForeignKeyJoinRedeliveredInput processes every order and customer
// again, as Kafka redelivers input after a crash: the results stay.
func TestForeignKeyJoinRedeliveredInput(t *testing.T) {
	d, err := streamtest.New(fkOrdersTopology(t), stream.StartTime(time.UnixMilli(0)))
	require.NoError(t, err)
	defer d.Close()
	str := stream.String()
	orders := streamtest.NewInputTopic(d, "orders", str, str)
	customers := streamtest.NewInputTopic(d, "customers", str, str)
	require.NoError(t, customers.PipeAt("c1", "ann", time.UnixMilli(1)))
	require.NoError(t, orders.PipeAt("o0", "c1:a", time.UnixMilli(2)))
	require.NoError(t, orders.PipeAt("o1", "c2:b", time.UnixMilli(3)))
	require.NoError(t, orders.PipeAt("o0", "c2:a", time.UnixMilli(4)))
	require.NoError(t, customers.PipeAt("c2", "bob", time.UnixMilli(5)))
	inner, left := fkState(t, d, 2)
	require.Equal(t, map[string]string{"o0": "c2:a/bob", "o1": "c2:b/bob"}, inner)
	require.Equal(t, inner, left)
	require.NoError(t, d.Redeliver("orders", 0, 0))
	require.NoError(t, d.Redeliver("customers", 0, 0))
	inner2, left2 := fkState(t, d, 2)
	require.Equal(t, inner, inner2)
	require.Equal(t, left, left2)
}

// TestForeignKeyJoinNamesItsTopics checks the internal topics and stores
// a named join adds (they must not change between versions of a
// topology, or a restarted application loses its subscriptions).
func TestForeignKeyJoinNamesItsTopics(t *testing.T) {
	desc := fkOrdersTopology(t).Describe()
	for _, want := range []string{
		"(topics: [orders-inner-subscription-registration-topic])",
		"(topic: orders-inner-subscription-response-topic)",
		"orders-inner-subscription-store",
		"(topics: [orders-left-subscription-response-topic])",
		"stores: [left",
	} {
		require.Contains(t, desc, want)
	}
}

// TestForeignKeyJoinTopologyErrors: a join whose tables lack what it
// needs fails at Build with a message that says what to do.
func TestForeignKeyJoinTopologyErrors(t *testing.T) {
	str, i64 := stream.String(), stream.Int64()
	fk := func(_ string, v int64) (string, bool) { return fmt.Sprint(v), true }
	joiner := func(v, vo int64) int64 { return v + vo }
	for _, tc := range []struct {
		name, want string
		build      func(b *stream.Builder)
	}{
		{"left values without a serde", "needs key and value serdes", func(b *stream.Builder) {
			l := stream.MapTableValues(stream.TableSource(b, "l", str, i64), func(_ string, v int64) int64 { return v })
			stream.JoinTablesOnForeignKey(l, stream.TableSource(b, "r", str, i64), fk, joiner)
		}},
		{"right values without a serde", "needs key and value serdes", func(b *stream.Builder) {
			r := stream.MapTableValues(stream.TableSource(b, "r", str, i64), func(_ string, v int64) int64 { return v })
			stream.LeftJoinTablesOnForeignKey(stream.TableSource(b, "l", str, i64), r, fk, func(v int64, _ *int64) int64 { return v })
		}},
		{"right table without timestamps", "keeps no timestamps", func(b *stream.Builder) {
			r := stream.Count(stream.GroupByKey(stream.Source(b, "r", str, i64)), stream.Materialized[string, int64]{})
			stream.JoinTablesOnForeignKey(stream.TableSource(b, "l", str, i64), r, fk, joiner)
		}},
		{"left table without old values", "carry no old values", func(b *stream.Builder) {
			l := stream.Count(stream.GroupByKey(stream.Source(b, "l", str, i64)), stream.Materialized[string, int64]{})
			stream.JoinTablesOnForeignKey(l, stream.TableSource(b, "r", str, i64), fk, joiner)
		}},
		{"no joiner", "needs a foreign-key extractor and a joiner", func(b *stream.Builder) {
			stream.JoinTablesOnForeignKey[string, int64, string, int64, int64](stream.TableSource(b, "l", str, i64), stream.TableSource(b, "r", str, i64), fk, nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			tc.build(b)
			_, err := b.Build()
			require.ErrorIs(t, err, stream.ErrInvalidTopology)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestForeignKeyJoinOfATableWithItself joins employees (id -> "name,manager
// id") with their managers in the same table: one sub-topology reads the
// table and both internal topics, and a manager's rename reaches their
// reports.
func TestForeignKeyJoinOfATableWithItself(t *testing.T) {
	b := stream.NewBuilder()
	str := stream.String()
	staff := stream.TableSource(b, "staff", str, str)
	withManager := stream.LeftJoinTablesOnForeignKey(staff, staff,
		func(_ string, v string) (string, bool) {
			_, manager, _ := strings.Cut(v, ",")
			return manager, manager != ""
		},
		func(v string, manager *string) string {
			name, _, _ := strings.Cut(v, ",")
			if manager == nil {
				return name + " reports to nobody"
			}
			boss, _, _ := strings.Cut(*manager, ",")
			return name + " reports to " + boss
		},
		stream.ForeignKeyJoined[string, string]{Materialized: stream.Materialized[string, string]{StoreName: "reports", ValueSerde: str}})
	stream.ToStreamWithTombstones(withManager).To("out", str, stream.TombstoneSerde(str))
	top, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(top, stream.Partitions(3), stream.StartTime(time.UnixMilli(0)))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.NewInputTopic(d, "staff", str, str)
	for _, kv := range [][2]string{{"e1", "ann,"}, {"e2", "bob,e1"}, {"e3", "cid,e1"}, {"e4", "dan,e2"}, {"e1", "anna,"}} {
		require.NoError(t, in.Pipe(kv[0], kv[1]))
	}
	s := streamtest.KeyValueStore[string, string](d, "reports", str)
	got := map[string]string{}
	for _, k := range []string{"e1", "e2", "e3", "e4"} {
		v, _, err := s.Get(k)
		require.NoError(t, err)
		got[k] = v
	}
	require.Equal(t, map[string]string{"e1": "anna reports to nobody", "e2": "bob reports to anna", "e3": "cid reports to anna", "e4": "dan reports to bob"}, got)
}
