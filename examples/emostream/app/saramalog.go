package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/IBM/sarama"
)

// saramaLog receives SaramaLogger's lines: the logger of the Main running
// with --log-level debug, nil when none is.
var saramaLog atomic.Pointer[slog.Logger]

// SaramaLogger returns a logger to install as sarama's package-level
// sarama.Logger, once, before Main: while a Main runs with --log-level
// debug, it writes each of sarama's lines to that Main's log at debug level
// with component=sarama (what sarama says about its connections, metadata,
// consumer group and partition consumers); otherwise it drops them.
// sarama's logger is a global that every client in the process shares, so
// Main does not set it itself: the emostream command does, tests that run
// several Mains in one process do not.
func SaramaLogger() sarama.StdLogger { return saramaLogger{} }

type saramaLogger struct{}

func (saramaLogger) Print(v ...any)                 { saramaLine(fmt.Sprint(v...)) }
func (saramaLogger) Printf(format string, v ...any) { saramaLine(fmt.Sprintf(format, v...)) }
func (saramaLogger) Println(v ...any)               { saramaLine(fmt.Sprintln(v...)) }

func saramaLine(s string) {
	l := saramaLog.Load()
	if l == nil || !l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.Debug(strings.TrimRight(s, "\n"))
}
