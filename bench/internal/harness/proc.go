package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a child process: an emostream subcommand the benchmark runs and
// measures. Its output goes to a log file.
type Proc struct {
	// Name labels the process in messages.
	Name string
	// Log is the path of the file its stdout and stderr go to.
	Log string

	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	waitErr error

	mu    sync.Mutex
	state *os.ProcessState
}

// Start runs bin with args, its output written to logPath. The child gets
// its own process group (a Ctrl-C on the terminal reaches the benchmark,
// which then stops the child in order), SIGTERM if the benchmark dies, and
// the benchmark's environment without EMOSTREAM_ variables.
func Start(name, bin string, args []string, logPath string) (*Proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(lf, "# %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{Name: name, Log: logPath, cmd: cmd, logFile: lf, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		_ = lf.Close()
		close(p.done)
	}()
	return p, nil
}

// childEnv is the benchmark's environment without EMOSTREAM_ variables: the
// benchmark passes every setting as a flag, and a stray EMOSTREAM_DATA_DIR or
// EMOSTREAM_LOAD_CLIENTS in the user's shell must not change what is measured.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EMOSTREAM_") {
			env = append(env, kv)
		}
	}
	return env
}

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the child has exited.
func (p *Proc) Exited() <-chan struct{} { return p.done }

// Stop sends SIGTERM (a graceful shutdown), waits up to timeout, then kills
// the child. It returns the child's exit error, if it failed or had to be
// killed; a child that exited by itself earlier is reported the same way.
func (p *Proc) Stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %v after SIGTERM: killed", p.Name, timeout)
	}
}

func (p *Proc) exitErr() error {
	if p.waitErr != nil {
		return fmt.Errorf("%s: %w (log: %s)", p.Name, p.waitErr, p.Log)
	}
	return nil
}

// CPUSeconds returns the user+system CPU time the child has used so far
// (all threads): from /proc while it runs, from its rusage once it exited.
func (p *Proc) CPUSeconds() (float64, error) {
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	if st != nil {
		return (st.UserTime() + st.SystemTime()).Seconds(), nil
	}
	return CPUSeconds(p.Pid())
}

// PeakRSSMB returns the child's peak resident set size in MiB: VmHWM while
// it runs, maxrss once it exited.
func (p *Proc) PeakRSSMB() (float64, error) {
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	if st != nil {
		if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
			return float64(ru.Maxrss) / 1024, nil
		}
		return 0, errors.New("no rusage")
	}
	return PeakRSSMB(p.Pid())
}

// Tail returns up to n bytes of the end of the child's log.
func (p *Proc) Tail(n int) string {
	raw, err := os.ReadFile(p.Log)
	if err != nil {
		return ""
	}
	if len(raw) > n {
		raw = raw[len(raw)-n:]
	}
	return string(raw)
}

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat.
var clockTicks = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100
})

// CPUSeconds returns the user+system CPU time of process pid (all its
// threads) from /proc/<pid>/stat.
func CPUSeconds(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; after its ')' come
	// fields 3 (state) onwards, so utime (14) and stime (15) are the 12th
	// and 13th.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return (ut + st) / clockTicks(), nil
}

// SelfCPUSeconds returns the user+system CPU time of this process.
func SelfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// PeakRSSMB returns VmHWM (peak resident set size) of pid in MiB.
func PeakRSSMB(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if f := strings.Fields(v); len(f) >= 1 {
				kb, err := strconv.ParseFloat(f[0], 64)
				if err != nil {
					return 0, err
				}
				return kb / 1024, nil
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// WaitHealthy polls url (a /healthz endpoint) until it answers 200, the
// process exits, or timeout passes.
func WaitHealthy(ctx context.Context, p *Proc, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error // set by every attempt before it is reported
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		res, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(body)))
		} else {
			last = err
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited before it was healthy: %v\n%s", p.Name, p.exitErr(), p.Tail(2000))
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy after %v: %v (log: %s)", p.Name, timeout, last, p.Log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
