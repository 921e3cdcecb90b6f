package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// mainRun is Main running in the background.
type mainRun struct {
	stdout, stderr kafkatest.LogBuffer
	cancel         context.CancelFunc
	done           chan int
}

func startMainIn(t *testing.T, args ...string) *mainRun {
	t.Helper()
	m := &mainRun{done: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		m.done <- Main(ctx, Options{Args: args, Getenv: func(string) string { return "" }, Stdout: &m.stdout, Stderr: &m.stderr})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-m.done:
		case <-time.After(60 * time.Second):
			t.Errorf("Main did not return")
		}
	})
	return m
}

// wait returns Main's exit code, failing the test if it takes longer than d.
func (m *mainRun) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case code := <-m.done:
		m.done <- code // for the cleanup
		return code
	case <-time.After(d):
		t.Fatalf("Main still running after %v; stderr:\n%s", d, m.stderr.String())
		return -1
	}
}

// requireCleanFailure checks the way a data-dir problem must end: exit 1,
// and a last line of stderr that is the reason, without a panic or a stack
// trace anywhere.
func requireCleanFailure(t *testing.T, code int, stderr, command, reason string) {
	t.Helper()
	require.Equal(t, 1, code, stderr)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	require.True(t, strings.HasPrefix(last, "emostream "+command+": "), "last line: %q", last)
	require.Regexp(t, reason, last)
	for _, bad := range []string{"panic", "goroutine ", ".go:"} {
		require.NotContains(t, stderr, bad)
	}
}

// setDiskLimits changes the guard's thresholds for one test.
func setDiskLimits(t *testing.T, atStart, running uint64, interval time.Duration) {
	t.Helper()
	s, r, i := minFreeAtStart, minFreeRunning, diskCheckInterval
	minFreeAtStart, minFreeRunning, diskCheckInterval = atStart, running, interval
	t.Cleanup(func() { minFreeAtStart, minFreeRunning, diskCheckInterval = s, r, i })
}

// mountTmpfs mounts a tmpfs of the given size (e.g. "1m") on a fresh
// directory, or skips the test where that is not allowed.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("tmpfs mounts need Linux")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "emostream-test", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file into dir until only leave bytes are free (0: until
// the file system is full).
func fill(t *testing.T, dir string, leave uint64) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		free, ok := freeBytes(dir)
		require.True(t, ok)
		if leave > 0 && free <= leave {
			return
		}
		n := uint64(len(chunk))
		if leave > 0 && free-leave < n {
			n = free - leave
		}
		if _, err := f.Write(chunk[:n]); err != nil {
			require.True(t, errors.Is(err, syscall.ENOSPC), "filling: %v", err)
			return
		}
	}
}

func listenArgs() []string {
	return []string{"--broker-listen", "127.0.0.1:0", "--http", "127.0.0.1:0"}
}

// TestDataDirUnusable starts run and broker with data directories they
// cannot use; none needs a mount.
func TestDataDirUnusable(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "a-file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	cases := []struct {
		name, dir, reason string
	}{
		{"a file", file, `--data-dir \S+/a-file is not a directory$`},
		{"below a file", filepath.Join(file, "sub"), `--data-dir \S+/a-file/sub cannot be created: not a directory$`},
		{"broker dir is a file", filepath.Join(tmp, "has-broker-file"), `--data-dir \S+/has-broker-file/broker is not a directory$`},
	}
	require.NoError(t, os.MkdirAll(filepath.Join(tmp, "has-broker-file"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "has-broker-file", "broker"), nil, 0o600))
	for _, tc := range cases {
		for _, command := range []string{"run", "broker"} {
			t.Run(tc.name+"/"+command, func(t *testing.T) {
				m := startMainIn(t, append([]string{command, "--data-dir", tc.dir}, listenArgs()...)...)
				requireCleanFailure(t, m.wait(t, 10*time.Second), m.stderr.String(), command, tc.reason)
				require.Len(t, strings.Split(strings.TrimSpace(m.stderr.String()), "\n"), 1, "one line")
			})
		}
	}
	t.Run("no write permission", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes to read-only directories anyway; TestDataDirReadOnlyMount covers this as root")
		}
		dir := filepath.Join(tmp, "read-only")
		require.NoError(t, os.Mkdir(dir, 0o500))
		m := startMainIn(t, append([]string{"broker", "--data-dir", dir}, listenArgs()...)...)
		requireCleanFailure(t, m.wait(t, 10*time.Second), m.stderr.String(), "broker", "permission denied")
	})
}

func TestDataDirReadOnlyMount(t *testing.T) {
	mnt := mountTmpfs(t, "ro,size=1m")
	for _, command := range []string{"run", "broker"} {
		t.Run(command, func(t *testing.T) {
			m := startMainIn(t, append([]string{command, "--data-dir", filepath.Join(mnt, "d")}, listenArgs()...)...)
			requireCleanFailure(t, m.wait(t, 10*time.Second), m.stderr.String(), command, "cannot be created: read-only file system$")
		})
	}
}

// TestDataDirTooSmall starts on a 1 MiB tmpfs: refused before anything
// starts.
func TestDataDirTooSmall(t *testing.T) {
	mnt := mountTmpfs(t, "size=1m")
	for _, command := range []string{"run", "broker"} {
		t.Run(command, func(t *testing.T) {
			m := startMainIn(t, append([]string{command, "--data-dir", filepath.Join(mnt, "d")}, listenArgs()...)...)
			requireCleanFailure(t, m.wait(t, 10*time.Second), m.stderr.String(), command,
				`has 0\.\d MiB free; the embedded broker needs at least 32\.0 MiB to start$`)
		})
	}
	t.Run("already full", func(t *testing.T) {
		mnt := mountTmpfs(t, "size=1m")
		fill(t, mnt, 0)
		m := startMainIn(t, append([]string{"broker", "--data-dir", mnt}, listenArgs()...)...)
		requireCleanFailure(t, m.wait(t, 10*time.Second), m.stderr.String(), "broker", "is not writable: no space left on device$")
	})
}

var dashboardURL = regexp.MustCompile(`dashboard:\s+(http://\S+)/`)

// TestDataDirFillsUp fills the file system under a running app: the guard
// notices the reserve is gone and the app stops with one clear line.
func TestDataDirFillsUp(t *testing.T) {
	setDiskLimits(t, 32<<20, 8<<20, 50*time.Millisecond)
	for _, command := range []string{"run", "broker"} {
		t.Run(command, func(t *testing.T) {
			mnt := mountTmpfs(t, "size=40m")
			dir := filepath.Join(mnt, "d")
			m := startMainIn(t, append([]string{command, "--data-dir", dir}, listenArgs()...)...)
			require.Eventually(t, func() bool {
				return strings.Contains(m.stdout.String(), "dashboard:") || strings.Contains(m.stdout.String(), "listening on")
			}, 30*time.Second, 20*time.Millisecond, "stderr: %s", m.stderr.String())
			fill(t, mnt, 4<<20)
			requireCleanFailure(t, m.wait(t, 15*time.Second), m.stderr.String(), command,
				`--data-dir \S+ is full: \d\.\d MiB free, below the 8\.0 MiB reserve; stopping before the embedded broker's writes fail`)
		})
	}
}

// TestDataDirWriteFails turns the reserve off so the broker's writes really
// fail with ENOSPC: the API answers 503 for what could not be written, and
// the app stops naming the failed write.
func TestDataDirWriteFails(t *testing.T) {
	setDiskLimits(t, 1<<20, 0, time.Hour)
	mnt := mountTmpfs(t, "size=8m")
	m := startMainIn(t, append([]string{"run", "--data-dir", filepath.Join(mnt, "d")}, listenArgs()...)...)
	var base string
	require.Eventually(t, func() bool {
		if s := dashboardURL.FindStringSubmatch(m.stdout.String()); s != nil {
			base = s[1]
		}
		return base != ""
	}, 30*time.Second, 20*time.Millisecond)
	batch := "[" + strings.TrimSuffix(strings.Repeat(`{"user_id":"u","emoji_type":"💾"},`, 100), ",") + "]"
	post := func() int {
		res, err := http.Post(base+"/api", "application/json", strings.NewReader(batch))
		if err != nil {
			return 0 // the app is stopping
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	require.Eventually(t, func() bool { return post() == 202 }, 30*time.Second, 50*time.Millisecond)

	// Small writes still fit into the last pages of the open segment files
	// for a while; once they do not, the write fails and is not
	// acknowledged.
	fill(t, mnt, 0)
	statuses := map[int]int{}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		code := post()
		statuses[code]++
		if code != 202 {
			break
		}
	}
	require.NotZero(t, statuses[503]+statuses[0], "a write that failed is not acknowledged: %v", statuses)
	t.Logf("requests until the first failure: %v; stderr:\n%s", statuses, m.stderr.String())
	requireCleanFailure(t, m.wait(t, 15*time.Second), m.stderr.String(), "run",
		`the embedded broker cannot write to --data-dir \S+: persist .*no space left on device`)
}
