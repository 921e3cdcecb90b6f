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
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kafkatest: log of the apps the test started:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
