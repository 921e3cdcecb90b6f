// Command emostream is the EmoStream reference application: an ingest API,
// a windowed aggregator, a live dashboard, a load client and an embedded
// Kafka-protocol broker in one binary. See README.md beside this file.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/examples/emostream/aggregator"
	"github.com/emostream/emostream/examples/emostream/app"
	"github.com/emostream/emostream/pkg/stream"
)

func main() {
	// sarama's log lines, at debug level, when --log-level is debug.
	sarama.Logger = app.SaramaLogger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one kills the process the usual
		// way, for when a graceful shutdown takes too long.
		<-ctx.Done()
		stop()
	}()
	code := app.Main(ctx, app.Options{
		Args: os.Args[1:],
		Aggregator: func(ctx context.Context, c app.AggregatorConfig) error {
			extra := []stream.Opt{stream.SessionTimeout(c.SessionTimeout), stream.HeartbeatInterval(c.HeartbeatInterval),
				stream.StandbyReplicas(c.StandbyReplicas)}
			if c.Cooperative {
				extra = append(extra, stream.CooperativeRebalancing())
			}
			if c.InstanceID != "" {
				extra = append(extra, stream.GroupInstanceID(c.InstanceID))
			}
			if c.Security.Enabled() {
				extra = append(extra, stream.WithSecurity(c.Security))
			}
			return aggregator.Run(ctx, aggregator.Config{
				Brokers: c.Brokers, InputTopic: c.InputTopic, OutputTopic: c.OutputTopic,
				DLQTopic: c.DLQTopic, Partitions: c.Partitions, Window: c.Window,
				Grace: c.Grace, Scale: c.Scale, StateDir: c.StateDir, ExactlyOnce: c.ExactlyOnce,
				Logger: c.Logger, Registerer: c.Registerer, Extra: extra, Aggregations: c.Aggregations,
			})
		},
	})
	stop()
	os.Exit(code)
}
