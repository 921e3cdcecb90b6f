package main

import (
	"bufio"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestChild(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var unexpected []string
	c := &Child{Name: "sh", Bin: "/bin/sh", LogPath: filepath.Join(dir, "sh.log"),
		// Exits 0 on SIGTERM, 3 when told to by the file "quit".
		Args: []string{"-c", `trap 'exit 0' TERM; while [ ! -e "$0" ]; do sleep 0.05; done; exit 3`, filepath.Join(dir, "quit")},
		OnUnexpectedExit: func(c *Child, err error) {
			mu.Lock()
			defer mu.Unlock()
			unexpected = append(unexpected, exitText(err))
		}}
	require.NoError(t, c.Start())
	require.True(t, c.Running())
	require.Error(t, c.Start(), "already running")
	time.Sleep(100 * time.Millisecond) // let the shell install its trap
	require.NoError(t, c.Stop(5*time.Second))
	require.False(t, c.Running())

	require.NoError(t, c.Start())
	c.Kill()
	require.False(t, c.Running())
	require.Equal(t, 2, c.Starts())

	// An exit nobody asked for is reported.
	require.NoError(t, c.Start())
	require.NoError(t, writeQuit(dir))
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(unexpected) == 1
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{"exit status 3"}, unexpected)
	require.NoError(t, c.Stop(time.Second), "stopping a dead child is a no-op")

	// A child that ignores SIGTERM is killed after the timeout.
	stubborn := &Child{Name: "stubborn", Bin: "/bin/sh", LogPath: filepath.Join(dir, "stubborn.log"),
		Args: []string{"-c", `trap '' TERM; while :; do sleep 0.05; done`}}
	require.NoError(t, stubborn.Start())
	time.Sleep(100 * time.Millisecond)
	err := stubborn.Stop(200 * time.Millisecond)
	require.ErrorContains(t, err, "did not exit within 200ms of SIGTERM")
	require.False(t, stubborn.Running())
}

func writeQuit(dir string) error {
	return writeFile(filepath.Join(dir, "quit"), func(w *bufio.Writer) {})
}

func TestLastStreamState(t *testing.T) {
	log := `=== smoke: start #1 of agg-1 at 2026-12-02T07:59:34Z: emostream [aggregate]
time=2026-12-02T07:59:35.000Z level=INFO msg="stream state" component=aggregator application_id=x from=CREATED to=REBALANCING
time=2026-12-02T07:59:36.000Z level=INFO msg="stream state" component=aggregator application_id=x from=REBALANCING to=RUNNING
=== smoke: agg-1 exited at 2026-12-02T07:59:43Z: exit status 0
=== smoke: start #2 of agg-1 at 2026-12-02T07:59:43Z: emostream [aggregate]
`
	if got := lastStreamState(log); got != "" {
		t.Fatalf("after a restart with no state line yet: got %q, want \"\"", got)
	}
	log += `time=2026-12-02T07:59:44.000Z level=INFO msg="stream state" component=aggregator application_id=x from=CREATED to=REBALANCING
`
	if got := lastStreamState(log); got != "REBALANCING" {
		t.Fatalf("got %q, want REBALANCING", got)
	}
	log += `time=2026-12-02T07:59:45.000Z level=INFO msg="stream state" component=aggregator application_id=x from=REBALANCING to=RUNNING
`
	if got := lastStreamState(log); got != "RUNNING" {
		t.Fatalf("got %q, want RUNNING", got)
	}
}
