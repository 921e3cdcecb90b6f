package app

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSaramaLoggerWritesAtDebugOnly: sarama's lines reach the running
// Main's log at debug level with component=sarama, and nowhere when no
// Main runs at debug level.
func TestSaramaLoggerWritesAtDebugOnly(t *testing.T) {
	defer saramaLog.Store(nil)
	l := SaramaLogger()
	var debug, info bytes.Buffer

	saramaLog.Store(slog.New(slog.NewTextHandler(&debug, &slog.HandlerOptions{Level: slog.LevelDebug})).With(slog.String("component", "sarama")))
	l.Printf("consumer/broker/%d abandoned subscription to %s/%d\n", 1, "topic1", 3)
	l.Println("Closed connection to broker", "127.0.0.1:9092")
	require.Contains(t, debug.String(), `level=DEBUG msg="consumer/broker/1 abandoned subscription to topic1/3" component=sarama`)
	require.Contains(t, debug.String(), `msg="Closed connection to broker 127.0.0.1:9092" component=sarama`)

	saramaLog.Store(slog.New(slog.NewTextHandler(&info, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.Print("not at info")
	require.Empty(t, info.String())

	saramaLog.Store(nil)
	l.Print("nobody listens") // must not panic
}
