package kafkatest

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// FailureLogger returns a debug-level logger whose output is kept in memory
// and written to the test's log only if the test has failed when it ends:
// quiet on success, the runtime's own account of what happened (joins,
// restores, commits, closes) on a failure that is hard to reproduce.
func FailureLogger(t testing.TB) *slog.Logger {
	t.Helper()
	buf := &LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kafkatest: log of the apps the test started:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// LogBuffer is a bytes.Buffer that many goroutines may write to while a
// test reads it: the sink for an App's logger, or for a child process's
// stdout and stderr. The zero value is an empty buffer ready to use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p; it never fails.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
