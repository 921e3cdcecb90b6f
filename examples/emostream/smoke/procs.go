package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Child is one emostream process the driver runs: the API or an
// aggregator. It can be killed, stopped and started again; its output goes
// to one log file across restarts.
type Child struct {
	Name    string
	Bin     string
	Args    []string
	LogPath string
	// OnUnexpectedExit is called (from another goroutine) when the process
	// exits while nobody asked it to.
	OnUnexpectedExit func(c *Child, err error)

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd has exited
	exitErr  error
	expected bool // the driver stopped or killed it
	starts   int
	started  time.Time
}

// Start starts the process (again). It fails if it is running.
func (c *Child) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil && !isClosed(c.done) {
		return fmt.Errorf("%s is already running", c.Name)
	}
	f, err := os.OpenFile(c.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	c.starts++
	fmt.Fprintf(f, "=== smoke: start #%d of %s at %s: %s %v\n", c.starts, c.Name, time.Now().Format(time.RFC3339Nano), c.Bin, c.Args)
	cmd := exec.Command(c.Bin, c.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a Ctrl-C in the terminal reaches the
		// driver only, which then stops the children itself.
		Setpgid: true,
		// If the driver dies without cleaning up, so does the child.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", c.Name, err)
	}
	done := make(chan struct{})
	c.cmd, c.done, c.expected, c.exitErr, c.started = cmd, done, false, nil, time.Now()
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "=== smoke: %s exited at %s: %v\n", c.Name, time.Now().Format(time.RFC3339Nano), exitText(err))
		f.Close()
		c.mu.Lock()
		c.exitErr = err
		expected := c.expected
		close(done)
		c.mu.Unlock()
		if !expected && c.OnUnexpectedExit != nil {
			c.OnUnexpectedExit(c, err)
		}
	}()
	return nil
}

// Running tells whether the process runs.
func (c *Child) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd != nil && !isClosed(c.done)
}

// Pid is the process id of the current (or last) process, 0 before Start.
func (c *Child) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// Kill sends SIGKILL and waits until the process is gone.
func (c *Child) Kill() {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	if cmd == nil || isClosed(done) {
		c.mu.Unlock()
		return
	}
	c.expected = true
	_ = cmd.Process.Signal(syscall.SIGKILL)
	c.mu.Unlock()
	<-done
}

// Stop sends SIGTERM, waits up to timeout for a graceful exit and then
// kills the process: first with SIGQUIT, so a Go program writes all its
// goroutines' stacks to the log (where it hangs), then with SIGKILL. It
// returns the exit error of a process that exited with a non-zero status,
// or an error saying it had to be killed.
func (c *Child) Stop(timeout time.Duration) error {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	if cmd == nil || isClosed(done) {
		c.mu.Unlock()
		return nil
	}
	c.expected = true
	_ = cmd.Process.Signal(syscall.SIGTERM)
	c.mu.Unlock()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed with SIGQUIT (goroutine dump in %s)", c.Name, timeout, c.LogPath)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exitErr != nil {
		return fmt.Errorf("%s exited with %v after SIGTERM", c.Name, exitText(c.exitErr))
	}
	return nil
}

// StartedAt is when the process was last started.
func (c *Child) StartedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// Starts is how many times the process was started.
func (c *Child) Starts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.starts
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// exitText describes how a process ended.
func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + ws.Signal().String()
		}
		return fmt.Sprintf("exit status %d", ee.ExitCode())
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// StreamState returns the stream application state the child's current run
// last logged (the "stream state" lines of stream.App: REBALANCING,
// RUNNING, ...), or "" when it logged none since its last start.
func (c *Child) StreamState() string {
	raw, err := os.ReadFile(c.LogPath)
	if err != nil {
		return ""
	}
	return lastStreamState(string(raw))
}

// lastStreamState finds the state of the last "stream state" line after the
// last start marker of a child's log.
func lastStreamState(log string) string {
	if i := strings.LastIndex(log, "=== smoke: start #"); i >= 0 {
		log = log[i:]
	}
	i := strings.LastIndex(log, `msg="stream state"`)
	if i < 0 {
		return ""
	}
	line := log[i:]
	if j := strings.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	j := strings.Index(line, " to=")
	if j < 0 {
		return ""
	}
	state := line[j+len(" to="):]
	if k := strings.IndexByte(state, ' '); k >= 0 {
		state = state[:k]
	}
	return state
}
