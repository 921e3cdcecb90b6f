// Command ours runs EmoStream's windowed aggregator topology on pkg/stream and
// pkg/window for the throughput comparison in bench/compare (issue #6).
//
// The topology is examples/emostream/aggregator.Topology itself, with
// Config.StreamTimeOnly set (wall-clock close off). The aggregator closes windows by the
// wall clock too (the contract's "results arrive on time with idle input"),
// which would declare every record of a preloaded, historic data set late the
// moment the task catches up. With it off, stream time alone closes windows,
// exactly as in Kafka Streams (which has no wall-clock close), so both engines
// do the same work and must produce the same results. The runtime options are
// aggregator.Options, the ones `emostream aggregate` uses.
//
// It runs until SIGTERM/SIGINT, then shuts the App down cleanly (committing)
// and writes the CPU profile if -cpuprofile was given.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/emostream/emostream/examples/emostream/aggregator"
	"github.com/emostream/emostream/pkg/stream"
)

func main() {
	brokers := flag.String("brokers", envOr("KAFKA_BROKERS", "127.0.0.1:29092"), "bootstrap brokers, comma-separated")
	appID := flag.String("app-id", "emostream-bench-ours", "application id (consumer group, internal topic prefix)")
	input := flag.String("input", "topic1", "input topic")
	output := flag.String("output", "topic2", "output topic")
	dlq := flag.String("dlq", "topic1.dlq", "dead-letter topic (late and malformed records)")
	guarantee := flag.String("guarantee", "at_least_once", "at_least_once or exactly_once_v2 (stream.ExactlyOnce)")
	commit := flag.Duration("commit", time.Second, "commit interval (stream.CommitInterval)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memprofile := flag.String("memprofile", "", "write a heap profile (live objects) to this file when SIGTERM/SIGINT arrives, before shutting down")
	store := flag.String("store", "memory", "window store: memory, or disk (stream.Persistent(): pebble under -state-dir)")
	stateDir := flag.String("state-dir", "", "state directory for -store disk (stream.StateDir; empty: the runtime's default)")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	producer := flag.String("producer", envOr("OURS_PRODUCER", "kgo"), "at-least-once writer: kgo (the default), or sarama (stream.SaramaProducer); env OURS_PRODUCER")
	flag.Parse()

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}

	cfg := aggregator.Config{
		Brokers:       splitComma(*brokers),
		ApplicationID: *appID,
		InputTopic:    *input,
		OutputTopic:   *output,
		DLQTopic:      *dlq,
		Window:        2 * time.Second,
		Grace:         500 * time.Millisecond,
		Scale:         1000,
		Logger:        logger,
		Extra:         []stream.Opt{stream.CommitInterval(*commit)},
	}
	switch *guarantee {
	case "at_least_once":
	case "exactly_once_v2":
		cfg.Extra = append(cfg.Extra, stream.ExactlyOnce())
	default:
		fatal(fmt.Errorf("-guarantee must be at_least_once or exactly_once_v2, got %q", *guarantee))
	}

	switch *producer {
	case "kgo":
	case "sarama":
		cfg.Extra = append(cfg.Extra, stream.SaramaProducer())
	default:
		fatal(fmt.Errorf("-producer must be kgo or sarama, got %q", *producer))
	}

	switch *store {
	case "memory":
	case "disk":
		cfg.StoreOptions = []stream.StoreOpt{stream.Persistent()}
		if *stateDir != "" {
			cfg.Extra = append(cfg.Extra, stream.StateDir(*stateDir))
		}
	default:
		fatal(fmt.Errorf("-store must be memory or disk, got %q", *store))
	}

	cfg.StreamTimeOnly = true // historic data: see the package comment
	top, err := aggregator.Topology(cfg)
	if err != nil {
		fatal(err)
	}
	app, err := stream.NewApp(top, aggregator.Options(cfg)...)
	if err != nil {
		fatal(err)
	}
	// The heap profile is written before the App is told to stop, so it
	// shows the state the run built.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		if *memprofile != "" {
			if err := writeHeapProfile(*memprofile); err != nil {
				logger.Error("bench: heap profile", "err", err)
			}
		}
		stop()
	}()
	logger.Info("bench: starting", "input", cfg.InputTopic, "output", cfg.OutputTopic, "guarantee", *guarantee, "commit", *commit, "store", *store)
	if err := app.Run(ctx); err != nil {
		logger.Error("bench: app failed", "err", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// writeHeapProfile writes the live heap after a garbage collection, so it
// shows what the state at the end of the run holds.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func splitComma(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "ours:", err)
	os.Exit(2)
}
