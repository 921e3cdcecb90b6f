// Package harness holds what the EmoStream benchmarks bench/latency,
// bench/ingest and bench/seed share: their main, building the emostream
// binary, running its subcommands as child processes and reading their CPU
// time and memory from /proc, free loopback ports, health checks, latency
// distributions, cleanup of the topics a run created on a real Kafka, and
// writing results as JSON, headed by RunInfo.
//
// It is a measurement helper, not part of the library or the app.
package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Module is the module path the benchmarks belong to.
const Module = "github.com/emostream/emostream"

// ModuleRoot returns the directory of the module's go.mod, searched from the
// working directory upwards.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		raw, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(raw), "module "+Module+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run from inside the %s module", Module)
		}
		dir = parent
	}
}

// BuildEmostream builds ./examples/emostream of the module at root into dir
// and returns the binary's path. GO in the environment names the go tool
// (default "go").
func BuildEmostream(root, dir string) (string, error) {
	goTool := os.Getenv("GO")
	if goTool == "" {
		goTool = "go"
	}
	out := filepath.Join(dir, "emostream")
	cmd := exec.Command(goTool, "build", "-o", out, "./examples/emostream")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./examples/emostream: %w", err)
	}
	return out, nil
}

// FreeAddr returns a loopback address ("127.0.0.1:port") whose port was free
// a moment ago: the kernel picks it, the listener is closed again, and the
// caller hands the address to a child process.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// WaitTCP waits until addr accepts TCP connections or timeout passes.
func WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %v: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WriteJSON writes v, indented, to path (creating its directory).
func WriteJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}

// Machine describes where a benchmark ran.
type Machine struct {
	// Cores is the number of logical CPUs (runtime.NumCPU).
	Cores int `json:"cores"`
	// MemoryGiB is MemTotal from /proc/meminfo, 0 if unknown.
	MemoryGiB float64 `json:"memory_gib"`
	// Go is the toolchain that built the benchmark (runtime.Version).
	Go string `json:"go"`
	// OS and Arch are GOOS and GOARCH.
	OS   string `json:"os"`
	Arch string `json:"arch"`
}

// ThisMachine describes the machine the process runs on.
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
						m.MemoryGiB = Round(kb/(1<<20), 1)
					}
				}
			}
		}
	}
	return m
}

// RunID is a short identifier unique to this run, for topic names on a
// shared Kafka.
func RunID() string {
	return strconv.FormatInt(time.Now().UnixNano()/int64(time.Millisecond), 36)
}

// Logf prints a time-stamped progress line prefixed with the program name
// to stderr.
func Logf(prog, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s: %s\n", prog, time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// SplitList splits a comma-separated list, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ErrNoBrokers is returned by the Kafka helpers when given no broker.
var ErrNoBrokers = errors.New("harness: no brokers")
