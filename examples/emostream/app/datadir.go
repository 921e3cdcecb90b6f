package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Free space the embedded broker's --data-dir needs. kfake (the embedded
// broker) keeps serving when a write fails: it logs a warning and answers
// the produce request with an error, so without a guard a full disk would
// only show up as 503s. EmoStream stops instead, the way Apache Kafka shuts
// a broker down when its only log directory fails, with one line saying why.
var (
	// minFreeAtStart is what `run` and `broker` require before they start.
	minFreeAtStart uint64 = 32 << 20
	// minFreeRunning is the reserve below which they stop, before writes
	// start failing.
	minFreeRunning uint64 = 8 << 20
	// diskCheckInterval is how often the free space is checked.
	diskCheckInterval = time.Second
)

// probeSize is written (and removed) at start to prove the directory is
// writable.
const probeSize = 64 << 10

// checkDataDir creates dir if needed and checks that files can be written
// there and that it has minFreeAtStart bytes free. Errors name the flag and
// the directory and fit on one line.
func checkDataDir(dir string) error {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("--data-dir %s is not a directory", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--data-dir %s cannot be created: %w", dir, unwrapPath(err))
	}
	f, err := os.CreateTemp(dir, ".emostream-write-check-*")
	if err != nil {
		return fmt.Errorf("--data-dir %s is not writable: %w", dir, unwrapPath(err))
	}
	name := f.Name()
	defer os.Remove(name)
	_, err = f.Write(make([]byte, probeSize))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--data-dir %s is not writable: %w", dir, unwrapPath(err))
	}
	if free, ok := freeBytes(dir); ok && free < minFreeAtStart {
		return fmt.Errorf("--data-dir %s has %s free; the embedded broker needs at least %s to start", dir, mib(free), mib(minFreeAtStart))
	}
	return nil
}

// unwrapPath drops the *PathError's operation and path, which repeat what
// the message already says ("--data-dir D is not writable: open
// D/.emostream-write-check-123: read-only file system" becomes "...: read-only
// file system").
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// diskGuard watches the embedded broker's data directory while it runs: the
// free space, and the broker's own reports of failed writes.
type diskGuard struct {
	dir    string
	failed chan struct{}
	once   sync.Once
	err    error
}

func newDiskGuard(dir string) *diskGuard {
	return &diskGuard{dir: dir, failed: make(chan struct{})}
}

// fail records the first problem and wakes up whoever waits for one.
func (g *diskGuard) fail(err error) {
	g.once.Do(func() {
		g.err = err
		close(g.failed)
	})
}

// Err is the problem found, or nil.
func (g *diskGuard) Err() error {
	select {
	case <-g.failed:
		return g.err
	default:
		return nil
	}
}

// run checks the free space until ctx ends (nil) or a problem is found
// (the problem).
func (g *diskGuard) run(ctx context.Context) error {
	t := time.NewTicker(diskCheckInterval)
	defer t.Stop()
	for {
		if free, ok := freeBytes(g.dir); ok && free < minFreeRunning {
			g.fail(fmt.Errorf("--data-dir %s is full: %s free, below the %s reserve; stopping before the embedded broker's writes fail",
				g.dir, mib(free), mib(minFreeRunning)))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-g.failed:
			return g.err
		case <-t.C:
		}
	}
}

// handler is the embedded broker's log handler: it passes the broker's
// warnings and errors on to next, and a failed write to the data directory
// (kfake's messages for those start with "persist", e.g. "persist batch
// topic1-0: write ...: no space left on device", or name the write) also
// fails the guard.
func (g *diskGuard) handler(next slog.Handler) slog.Handler {
	return &guardHandler{g: g, next: next}
}

type guardHandler struct {
	g    *diskGuard
	next slog.Handler
}

func (h *guardHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *guardHandler) Handle(ctx context.Context, r slog.Record) error {
	if isWriteFailure(r.Message) {
		h.g.fail(fmt.Errorf("the embedded broker cannot write to --data-dir %s: %s", h.g.dir, r.Message))
	}
	return h.next.Handle(ctx, r)
}

// isWriteFailure tells kfake's reports of failed writes to its data
// directory from its other warnings.
func isWriteFailure(msg string) bool {
	for _, p := range []string{"persist", "save session state", "rebuildSegments"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func (h *guardHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &guardHandler{g: h.g, next: h.next.WithAttrs(as)}
}

func (h *guardHandler) WithGroup(name string) slog.Handler {
	return &guardHandler{g: h.g, next: h.next.WithGroup(name)}
}

// brokerDataDir is where the embedded broker keeps its log under --data-dir.
func brokerDataDir(dataDir string) string { return filepath.Join(dataDir, "broker") }
