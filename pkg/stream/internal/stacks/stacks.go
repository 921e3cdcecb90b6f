// Package stacks dumps the goroutines of the Kafka clients and the stream
// runtime, for the logs and tests that ask why a partition waits.
package stacks

import (
	"bytes"
	"runtime/pprof"
	"strings"
)

// Kafka returns the stacks of the goroutines with a frame in sarama or in
// package stream, one block per goroutine, cut after about limit bytes;
// goroutines with a frame containing skip (the caller's, say) are left
// out when skip is not empty.
func Kafka(skip string, limit int) string {
	var all bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&all, 2)
	var b strings.Builder
	for _, g := range strings.Split(all.String(), "\n\n") {
		if skip != "" && strings.Contains(g, skip) {
			continue
		}
		if strings.Contains(g, "github.com/IBM/sarama") || strings.Contains(g, "emostream/pkg/stream.") {
			b.WriteString(g)
			b.WriteString("\n\n")
		}
		if b.Len() > limit {
			b.WriteString("(cut)\n")
			break
		}
	}
	return b.String()
}
