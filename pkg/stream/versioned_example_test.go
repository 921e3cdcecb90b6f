package stream_test

import (
	"fmt"
	"time"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
)

// A stream of orders joined with a versioned table of prices: each order
// gets the price of its time, also when the price update arrives after the
// order (within the grace period) or out of order.
func ExampleVersionedTableSource() {
	b := stream.NewBuilder()
	prices := stream.VersionedTableSource(b, "prices", stream.String(), stream.String(), time.Hour,
		stream.Materialized[string, string]{StoreName: "prices"})
	orders := stream.Source(b, "orders", stream.String(), stream.String())
	stream.LeftJoinTable(orders, prices, func(order string, price *string) string {
		if price == nil {
			return order + " at no price"
		}
		return order + " at " + *price
	}, stream.Joined[string, string]{Grace: 10 * time.Millisecond}).To("out", stream.String(), stream.String())
	d := runExample(b, stream.String(), func(d *streamtest.Driver) {
		p := streamtest.NewInputTopic(d, "prices", stream.String(), stream.String())
		o := streamtest.NewInputTopic(d, "orders", stream.String(), stream.String())
		_ = p.PipeAt("tea", "2.00", time.UnixMilli(100))
		_ = p.PipeAt("tea", "2.50", time.UnixMilli(200))
		_ = o.PipeAt("tea", "order 1", time.UnixMilli(150)) // waits in the grace buffer
		_ = p.PipeAt("tea", "2.20", time.UnixMilli(140))    // out of order, before order 1's time
		_ = o.PipeAt("tea", "order 2", time.UnixMilli(90))  // joined at once: 150-10 is past 90
		_ = o.PipeAt("tea", "order 3", time.UnixMilli(210)) // releases order 1
	})
	defer d.Close()
	latest, _, _ := streamtest.KeyValueStore[string, string](d, "prices", stream.String()).Get("tea")
	fmt.Println("latest price:", latest)
	// Output:
	// tea=order 2 at no price @90
	// tea=order 1 at 2.20 @150
	// latest price: 2.50
}
