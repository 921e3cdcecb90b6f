package load

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/wire"
)

// cannedServer answers every request read from a connection with the next
// of its answers (cycling), and counts connections and requests. Each
// request's body must be exactly its Content-Length.
type cannedServer struct {
	answers  []string
	conns    atomic.Int64
	requests atomic.Int64
	bodies   chan string
	addr     string
}

func startCanned(t *testing.T, answers ...string) *cannedServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &cannedServer{answers: answers, bodies: make(chan string, 100), addr: ln.Addr().String()}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go s.serve(conn)
		}
	}()
	return s
}

func (s *cannedServer) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		select {
		case s.bodies <- req.Method + " " + req.URL.Path + " " + req.Header.Get("Content-Type") + " " + string(body):
		default:
		}
		n := s.requests.Add(1)
		answer := s.answers[(n-1)%int64(len(s.answers))]
		if _, err := io.WriteString(conn, answer); err != nil {
			return
		}
		if strings.Contains(answer, "Connection: close") || strings.HasPrefix(answer, "HTTP/1.0") {
			return
		}
	}
}

func rawConnTo(t *testing.T, ctx context.Context, addr string) *rawConn {
	tgt := newRawTarget("http://"+addr+"/api", 2*time.Second)
	require.NotNil(t, tgt)
	c := tgt.newConn(ctx)
	t.Cleanup(c.close)
	return c
}

func TestRawConnAnswers(t *testing.T) {
	accepted := "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"accepted\":1}"
	tests := []struct {
		name      string
		answer    string
		status    int
		wantConns int64 // connections for three requests
	}{
		{"content-length", accepted, 202, 1},
		{"chunked", "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\n{\"acc\r\n9\r\nepted\":1}\r\n0\r\nX-Trailer: 1\r\n\r\n", 202, 1},
		{"connection close", "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", 503, 3},
		{"http/1.0 without length", "HTTP/1.0 400 Bad Request\r\n\r\n{\"error\":\"x\"}", 400, 3},
		{"no body", "HTTP/1.1 204 No Content\r\n\r\n", 204, 1},
		{"informational first", "HTTP/1.1 100 Continue\r\n\r\n" + accepted, 202, 1},
		{"lower-case headers", "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}", 202, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startCanned(t, tc.answer)
			c := rawConnTo(t, context.Background(), s.addr)
			for i := range 3 {
				status, err := c.post([]byte(`{"n":` + strconv.Itoa(i) + `}`))
				require.NoError(t, err)
				require.Equal(t, tc.status, status)
				require.Equal(t, `POST /api application/json {"n":`+strconv.Itoa(i)+`}`, <-s.bodies)
			}
			require.Equal(t, tc.wantConns, s.conns.Load())
		})
	}
}

func TestRawConnErrors(t *testing.T) {
	t.Run("garbage answer", func(t *testing.T) {
		s := startCanned(t, "SMTP ready\r\n\r\n")
		c := rawConnTo(t, context.Background(), s.addr)
		_, err := c.post([]byte(`{}`))
		require.ErrorIs(t, err, errStatusLine)
		require.Nil(t, c.conn, "a broken connection is closed")
	})
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		c := rawConnTo(t, context.Background(), addr)
		_, err = c.post([]byte(`{}`))
		require.Error(t, err)
	})
	t.Run("server hangs up mid-body: the status counts, next request redials", func(t *testing.T) {
		s := startCanned(t, "HTTP/1.1 202 Accepted\r\nContent-Length: 10\r\nConnection: close\r\n\r\n{}") // body cut short
		c := rawConnTo(t, context.Background(), s.addr)
		status, err := c.post([]byte(`{}`))
		require.NoError(t, err)
		require.Equal(t, 202, status)
		require.Nil(t, c.conn, "a broken connection is closed")
		_, _ = c.post([]byte(`{}`))
		require.Equal(t, int64(2), s.conns.Load())
	})
	t.Run("server hangs up before answering", func(t *testing.T) {
		s := startCanned(t, "HTTP/1.0 202 Acc") // status line cut short, then closed
		c := rawConnTo(t, context.Background(), s.addr)
		_, err := c.post([]byte(`{}`))
		require.Error(t, err)
	})
	t.Run("cancel interrupts a request", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = ln.Close() })
		go func() { // accepts, never answers
			conn, err := ln.Accept()
			if err == nil {
				defer conn.Close()
				_, _ = io.Copy(io.Discard, conn)
			}
		}()
		ctx, cancel := context.WithCancel(context.Background())
		c := rawConnTo(t, ctx, ln.Addr().String())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err = c.post([]byte(`{}`))
		require.ErrorIs(t, err, context.Canceled)
		require.Less(t, time.Since(start), time.Second)
	})
}

func TestRawTargetOnlyPlainHTTP(t *testing.T) {
	require.Nil(t, newRawTarget("https://example.test/api", time.Second))
	tgt := newRawTarget("http://example.test/api?x=1", time.Second)
	require.Equal(t, "example.test:80", tgt.addr)
	require.Equal(t, "example.test", tgt.host)
	require.Equal(t, "/api?x=1", tgt.path)
}

// TestAppendBody checks the hand-built bodies against encoding/json's
// reading of them.
func TestAppendBody(t *testing.T) {
	for _, batch := range []int{1, 3} {
		c, err := New(Config{Target: "http://127.0.0.1:1", Batch: batch})
		require.NoError(t, err)
		now := time.UnixMilli(1767225600123)
		c.picker = newPicker(c.cfg.Emojis, now)
		body := c.appendBody(nil, newTestRand(), []byte(`"load-001"`), now)
		items := decodeBody(t, body, batch)
		require.Len(t, items, batch)
		for _, it := range items {
			require.Equal(t, "load-001", it.UserID)
			require.Contains(t, c.cfg.Emojis, it.EmojiType)
			require.NotNil(t, it.Timestamp)
			require.Equal(t, int64(1767225600123), *it.Timestamp)
		}
	}
}

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func decodeBody(t *testing.T, body []byte, batch int) []wire.Request {
	var items []wire.Request
	if batch == 1 {
		var r wire.Request
		require.NoError(t, json.Unmarshal(body, &r), "%s", body)
		items = append(items, r)
		_, err := wire.ParseRequest(body, time.Now())
		require.NoError(t, err)
	} else {
		require.NoError(t, json.Unmarshal(body, &items), "%s", body)
		var raws []json.RawMessage
		require.NoError(t, json.Unmarshal(body, &raws))
		for _, r := range raws {
			_, err := wire.ParseRequest(r, time.Now())
			require.NoError(t, err)
		}
	}
	return items
}

// TestRunWithHTTPClient covers the net/http path, used with a
// Config.HTTPClient and for https targets.
func TestRunWithHTTPClient(t *testing.T) {
	f, url := startFake(t)
	c, err := New(Config{Target: url, Clients: 2, Rate: 200, Duration: 500 * time.Millisecond, Batch: 5,
		HTTPClient: &http.Client{Timeout: time.Second}})
	require.NoError(t, err)
	require.Nil(t, c.raw)
	require.NoError(t, c.Run(context.Background()))
	s := c.Summary()
	require.Zero(t, f.bad.Load())
	require.Zero(t, s.Errors)
	require.Positive(t, s.Accepted)
	require.Equal(t, f.emojis.Load(), s.Accepted)
}
