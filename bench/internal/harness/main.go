package harness

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Main is a benchmark's main: it finds the module root, parses the flags
// with parse (exit 0 on -h, 2 on a bad flag), then calls run until SIGINT
// or SIGTERM cancels its context. It exits 1 when run fails or returns
// false (the measurement did not pass its checks).
func Main[O any](prog string, parse func(root string) (O, error), run func(ctx context.Context, root string, o O) (bool, error)) {
	root, err := ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, prog+":", err)
		os.Exit(2)
	}
	o, err := parse(root)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, prog+":", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	ok, err := run(ctx, root, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, prog+":", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// Emostream returns bin when it is set; else it builds ./examples/emostream
// of the module at root into a new temporary directory (named after
// prefix) and returns that binary. cleanup removes the directory; call it
// when done, also after an error.
func Emostream(prog, root, bin, prefix string) (path string, cleanup func(), err error) {
	if bin != "" {
		return bin, func() {}, nil
	}
	work, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", func() {}, err
	}
	cleanup = func() { os.RemoveAll(work) }
	Logf(prog, "building ./examples/emostream...")
	if path, err = BuildEmostream(root, work); err != nil {
		return "", cleanup, err
	}
	return path, cleanup, nil
}

// RunInfo is the head of a benchmark's JSON report: when it ran, against
// which broker, on which machine. Embed it first in the report struct.
type RunInfo struct {
	Date    string  `json:"date"`    // RFC 3339, UTC
	Broker  string  `json:"broker"`  // which Kafka (or embedded broker)
	Machine Machine `json:"machine"` // cores, CPU, OS
}

// NewRunInfo is a RunInfo for a run against broker, dated now (UTC).
func NewRunInfo(broker string) RunInfo {
	return RunInfo{Date: time.Now().UTC().Format(time.RFC3339), Broker: broker, Machine: ThisMachine()}
}
