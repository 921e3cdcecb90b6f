package httpx

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// serve runs Serve for h with short timeouts until the test ends and
// returns the address.
func serve(t *testing.T, h http.Handler, readHeader, read time.Duration) string {
	t.Helper()
	saved := timeouts
	timeouts.readHeader, timeouts.read = readHeader, read
	ln, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		timeouts = saved
	})
	return ln.Addr().String()
}

// trickle writes s one byte every interval until the connection fails or
// stop is closed.
func trickle(conn net.Conn, s string, interval time.Duration, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
		if _, err := conn.Write([]byte{s[i%len(s)]}); err != nil {
			return
		}
	}
}

// waitClosed reads conn until the server closes it and returns how long
// that took; it fails the test if the server answered with a status other
// than want (0: no answer expected).
func waitClosed(t *testing.T, conn net.Conn, want int) time.Duration {
	t.Helper()
	start := time.Now()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	r := bufio.NewReader(conn)
	res, err := http.ReadResponse(r, nil)
	if want != 0 {
		require.NoError(t, err)
		require.Equal(t, want, res.StatusCode)
		_, err = io.Copy(io.Discard, r)
	}
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server never closed the connection")
	return time.Since(start)
}

// TestSlowHeadersDisconnected is the slowloris attack: headers that never
// end, a byte at a time, and a connection that sends nothing at all. Both
// are dropped after ReadHeaderTimeout without reaching a handler.
func TestSlowHeadersDisconnected(t *testing.T) {
	var handled atomic.Int64
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handled.Add(1) }),
		300*time.Millisecond, 5*time.Second)

	t.Run("trickled headers", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, "POST /api HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		require.NoError(t, err)
		stop := make(chan struct{})
		defer close(stop)
		go trickle(conn, "abcdefgh", 50*time.Millisecond, stop)
		took := waitClosed(t, conn, 0)
		require.Less(t, took, 1500*time.Millisecond, "disconnected after ReadHeaderTimeout")
	})
	t.Run("silent connection", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		took := waitClosed(t, conn, 0)
		require.Less(t, took, 1500*time.Millisecond)
	})
	require.Zero(t, handled.Load(), "no handler ran for an unfinished request")
}

// TestSlowBodyCutOff sends complete headers and then trickles the body:
// ReadTimeout ends the read, so the handler gets an error and returns
// instead of waiting for the client.
func TestSlowBodyCutOff(t *testing.T) {
	readErr := make(chan error, 1)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		WriteError(w, http.StatusBadRequest, "reading body failed")
	}), time.Second, 500*time.Millisecond)

	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[")
	require.NoError(t, err)
	stop := make(chan struct{})
	defer close(stop)
	start := time.Now()
	go trickle(conn, "{} ,", 50*time.Millisecond, stop)
	select {
	case err := <-readErr:
		require.Error(t, err, "the body read is cut off")
		require.Less(t, time.Since(start), 1500*time.Millisecond)
	case <-time.After(5 * time.Second):
		t.Fatal("the handler is still reading the trickled body")
	}
	waitClosed(t, conn, 0)
}

// TestHugeHeadersRejected checks MaxHeaderBytes: 431, no handler.
func TestHugeHeadersRejected(t *testing.T) {
	var handled atomic.Int64
	addr := serve(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { handled.Add(1) }), time.Second, time.Second)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 2*MaxHeaderBytes)+"\r\n\r\n")
	require.NoError(t, err)
	waitClosed(t, conn, http.StatusRequestHeaderFieldsTooLarge)
	require.Zero(t, handled.Load())
}
