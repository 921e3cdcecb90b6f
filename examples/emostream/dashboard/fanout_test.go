package dashboard

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// poolServer is a dashboard whose hub the test feeds directly, served over
// loopback HTTP.
func poolServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	if !tryWriteSupported {
		t.Skip("no writer pool on this system: every stream has its own goroutine")
	}
	cfg.Brokers = []string{"127.0.0.1:1"} // never connected: Run is not called
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { s.CloseStreams(); srv.Close() })
	return s, srv
}

// rawStream opens /events over a plain TCP connection and reads the
// response head. A stream that will stall gets a smaller receive buffer
// (still above loopback's 64 KiB segments: below that, TCP stalls on its
// own), so that the server's writes find its socket full sooner.
func rawStream(t *testing.T, srv *httptest.Server, stalls bool) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	if stalls {
		require.NoError(t, conn.(*net.TCPConn).SetReadBuffer(128<<10))
	}
	_, err = fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	r := bufio.NewReader(conn)
	res, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	require.Equal(t, []string{"chunked"}, res.TransferEncoding)
	require.NotEmpty(t, res.Header.Get("Content-Security-Policy"), "the handler's headers are kept")
	return conn, bufio.NewReader(res.Body)
}

// readFrame returns the next data line's payload, skipping the rest.
func readFrame(r *bufio.Reader) (string, error) {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if p, ok := strings.CutPrefix(line, "data: "); ok {
			return strings.TrimSuffix(p, "\n"), nil
		}
	}
}

// frame is an event whose data is n followed by pad bytes.
func frame(n, pad int) []byte {
	return fmt.Appendf(nil, "event: window\ndata: %d %s\n\n", n, bytes.Repeat([]byte("x"), pad))
}

// TestPoolSlowViewer checks the writer pool: a viewer whose socket is full
// is finished by a goroutine of its own and then rejoins the pool, it gets
// every frame in order, and meanwhile a viewer that reads gets every frame
// without waiting for it.
func TestPoolSlowViewer(t *testing.T) {
	s, srv := poolServer(t, Config{ViewerBuffer: 4096})
	var fanouts atomic.Int64
	s.hub.fanout = func(time.Duration) { fanouts.Add(1) }

	_, slow := rawStream(t, srv, true)
	_, fast := rawStream(t, srv, false)
	require.Eventually(t, func() bool { return s.hub.viewers() == 2 }, 5*time.Second, 5*time.Millisecond)

	// 400 frames of 32 KiB, 12.5 MiB: far more than the slow viewer's
	// socket buffers hold.
	const frames, pad = 400, 32 << 10
	got := make(chan error, 1)
	go func() {
		for i := range frames {
			p, err := readFrame(fast)
			if err == nil && !strings.HasPrefix(p, fmt.Sprintf("%d x", i)) {
				err = fmt.Errorf("frame %d: got %.20q", i, p)
			}
			if err != nil {
				got <- err
				return
			}
		}
		got <- nil
	}()
	for i := range frames {
		s.hub.broadcast(frame(i, pad))
		if i%20 == 19 {
			time.Sleep(3 * linger) // one clump per 20 frames
		}
	}
	select {
	case err := <-got:
		require.NoError(t, err, "the fast viewer got every frame while the slow one did not read")
	case <-time.After(30 * time.Second):
		t.Fatal("the fast viewer was held up")
	}
	require.Positive(t, fanouts.Load(), "fan-outs are timed")

	for i := range frames {
		p, err := readFrame(slow)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(p, fmt.Sprintf("%d x", i)), "frame %d in order", i)
	}
	// Back in the pool: a new frame reaches it without a catch-up.
	s.hub.broadcast(frame(frames, 1))
	p, err := readFrame(slow)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("%d x", frames), p)
}

// TestPoolEnds checks that a pooled stream's place is freed when the
// viewer leaves, that a viewer too far behind the ring is dropped, and
// that closing the streams ends the pooled ones.
func TestPoolEnds(t *testing.T) {
	s, srv := poolServer(t, Config{ViewerBuffer: 4, MaxViewers: 2})
	conn, _ := rawStream(t, srv, false)
	require.Eventually(t, func() bool { return s.hub.viewers() == 1 }, 5*time.Second, 5*time.Millisecond)
	conn.Close()
	require.Eventually(t, func() bool { return s.hub.viewers() == 0 }, 5*time.Second, 5*time.Millisecond, "a viewer that left frees its place")

	// A viewer that stops reading falls behind: its socket fills, a
	// goroutine of its own waits to write the rest, and when the viewer
	// reads again the ring (4 frames) has gone past it, so it is dropped.
	_, stalled := rawStream(t, srv, true)
	require.Eventually(t, func() bool { return s.hub.viewers() == 1 }, 5*time.Second, 5*time.Millisecond)
	for i := range 200 { // 12.5 MiB
		s.hub.broadcast(frame(i, 64<<10))
		time.Sleep(3 * linger)
	}
	_, err := io.Copy(io.Discard, stalled)
	require.Error(t, err, "a dropped stream ends without the closing chunk")
	require.Eventually(t, func() bool { return s.hub.viewers() == 0 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, 1.0, counter(t, s, "emostream_dashboard_viewers_dropped_total"))

	_, open := rawStream(t, srv, false)
	require.Eventually(t, func() bool { return s.hub.viewers() == 1 }, 5*time.Second, 5*time.Millisecond)
	s.CloseStreams()
	_, err = io.Copy(io.Discard, open)
	require.Error(t, err, "closed streams end")
	require.Eventually(t, func() bool { return s.hub.viewers() == 0 }, 5*time.Second, 5*time.Millisecond)
}

// counter is the value of one of the server's unlabelled counters.
func counter(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestUnpooledStream checks the path for streams the pool cannot take (an
// HTTP/1.0 client here; HTTP/2 takes it too): a goroutine of their own
// serves them, and they get every frame as pooled ones do.
func TestUnpooledStream(t *testing.T) {
	s, srv := poolServer(t, Config{})
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "GET /events HTTP/1.0\r\n\r\n")
	require.NoError(t, err)
	r := bufio.NewReader(conn)
	res, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	require.Empty(t, res.TransferEncoding, "HTTP/1.0: not chunked, so not the pool's")
	body := bufio.NewReader(res.Body)
	for {
		line, err := body.ReadString('\n')
		require.NoError(t, err)
		if line == ": connected\n" {
			break
		}
	}
	for i := range 3 {
		s.hub.broadcast(frame(i, 1))
		p, err := readFrame(body)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("%d x", i), p)
	}
}
