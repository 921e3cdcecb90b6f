package stream_test

import (
	"time"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// Orders (order id -> customer id) joined with customers (customer id ->
// name) on the customer id: each order follows its customer's changes, an
// order whose customer is unknown has no result until the customer
// appears, and deleting a customer deletes its orders' results.
func ExampleJoinTablesOnForeignKey() {
	b := stream.NewBuilder()
	str := stream.String()
	orders := stream.TableSource(b, "orders", str, str)
	customers := stream.TableSource(b, "customers", str, str)
	joined := stream.JoinTablesOnForeignKey(orders, customers,
		func(orderID, customerID string) (string, bool) { return customerID, customerID != "" },
		func(customerID, name string) string { return customerID + ":" + name })
	stream.ToStreamWithTombstones(joined).To("out", str, stream.TombstoneSerde(str))
	d := runExample(b, str, func(d *streamtest.Driver) {
		o := streamtest.NewInputTopic(d, "orders", str, stream.TombstoneSerde(str))
		c := streamtest.NewInputTopic(d, "customers", str, stream.TombstoneSerde(str))
		_ = c.PipeAt("c1", ptr("ann"), time.UnixMilli(1))
		_ = o.PipeAt("o1", ptr("c1"), time.UnixMilli(2))
		_ = o.PipeAt("o2", ptr("c2"), time.UnixMilli(3)) // no customer c2 yet
		_ = c.PipeAt("c2", ptr("bob"), time.UnixMilli(4))
		_ = c.PipeAt("c1", ptr("anna"), time.UnixMilli(5))
		_ = o.PipeAt("o2", ptr("c1"), time.UnixMilli(6))
		_ = c.PipeAt("c1", nil, time.UnixMilli(7))
	})
	defer d.Close()
	// Output:
	// o1=c1:ann @2
	// o2=c2:bob @4
	// o1=c1:anna @5
	// o2=c1:anna @6
	// o1=<tombstone> @7
	// o2=<tombstone> @7
}

// The left join keeps every order: the joiner gets nil while the customer
// is unknown or deleted, and for an order without a customer id.
func ExampleLeftJoinTablesOnForeignKey() {
	b := stream.NewBuilder()
	str := stream.String()
	orders := stream.TableSource(b, "orders", str, str)
	customers := stream.TableSource(b, "customers", str, str)
	joined := stream.LeftJoinTablesOnForeignKey(orders, customers,
		func(orderID, customerID string) (string, bool) { return customerID, customerID != "" },
		func(customerID string, name *string) string {
			if name == nil {
				return customerID + ":?"
			}
			return customerID + ":" + *name
		})
	stream.ToStreamWithTombstones(joined).To("out", str, stream.TombstoneSerde(str))
	d := runExample(b, str, func(d *streamtest.Driver) {
		o := streamtest.NewInputTopic(d, "orders", str, stream.TombstoneSerde(str))
		c := streamtest.NewInputTopic(d, "customers", str, stream.TombstoneSerde(str))
		_ = o.PipeAt("o1", ptr("c1"), time.UnixMilli(1))
		_ = c.PipeAt("c1", ptr("ann"), time.UnixMilli(2))
		_ = o.PipeAt("o2", ptr(""), time.UnixMilli(3)) // no customer id
		_ = c.PipeAt("c1", nil, time.UnixMilli(4))
		_ = o.PipeAt("o1", nil, time.UnixMilli(5))
	})
	defer d.Close()
	// Output:
	// o1=c1:? @1
	// o1=c1:ann @2
	// o2=:? @3
	// o1=c1:? @4
	// o1=<tombstone> @5
}
