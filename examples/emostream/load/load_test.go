package load

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/wire"
)

// fakeAPI validates requests as the real API does and answers 202.
type fakeAPI struct {
	emojis   atomic.Int64
	requests atomic.Int64
	conns    atomic.Int64
	mu       sync.Mutex
	seen     map[string]int
	bad      atomic.Int64
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path != "/api" || r.Header.Get("Content-Type") != "application/json" {
		f.bad.Add(1)
		w.WriteHeader(400)
		return
	}
	var items []json.RawMessage
	if bytes.HasPrefix(body, []byte("[")) {
		_ = json.Unmarshal(body, &items)
	} else {
		items = []json.RawMessage{body}
	}
	for _, it := range items {
		ev, err := wire.ParseRequest(it, time.Now())
		if err != nil {
			f.bad.Add(1)
			w.WriteHeader(400)
			return
		}
		f.mu.Lock()
		f.seen[ev.EmojiType]++
		f.mu.Unlock()
	}
	f.emojis.Add(int64(len(items)))
	w.WriteHeader(202)
	_, _ = w.Write([]byte(`{"accepted":1}`))
}

func startFake(t *testing.T) (*fakeAPI, string) {
	f := &fakeAPI{seen: map[string]int{}}
	srv := httptest.NewUnstartedServer(f)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func TestRunAtRate(t *testing.T) {
	tests := []struct {
		name  string
		batch int
	}{
		{"single objects", 1},
		{"batches", 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, url := startFake(t)
			var progress bytes.Buffer
			c, err := New(Config{Target: url, Clients: 4, Rate: 400, Duration: 1500 * time.Millisecond, Batch: tc.batch,
				Progress: &syncWriter{w: &progress}, ProgressInterval: 200 * time.Millisecond})
			require.NoError(t, err)
			require.Equal(t, url+"/api", c.Endpoint())
			require.NoError(t, c.Run(context.Background()))

			s := c.Summary()
			require.Zero(t, f.bad.Load(), "every request is valid")
			require.Zero(t, s.Errors)
			require.Equal(t, f.emojis.Load(), s.Accepted)
			require.Equal(t, s.Emojis, s.Accepted)
			require.InDelta(t, 600, float64(s.Accepted), 200, "400/s for 1.5s")
			require.Equal(t, s.Requests, s.ByStatus[202])
			require.Equal(t, s.Accepted/int64(tc.batch), s.Requests)
			require.LessOrEqual(t, f.conns.Load(), int64(4), "keep-alive: one connection per client")
			require.Positive(t, s.P50)
			require.GreaterOrEqual(t, s.P99, s.P50)
			require.GreaterOrEqual(t, s.Elapsed, 1500*time.Millisecond)

			out := progress.String()
			require.Contains(t, out, "emojis accepted")
			require.Contains(t, out, "load summary:")
			require.Contains(t, out, "errors    0")
			f.mu.Lock()
			require.Greater(t, len(f.seen), 5, "a variety of emojis: %v", f.seen)
			f.mu.Unlock()
		})
	}
}

func TestRunUnlimitedUntilCancel(t *testing.T) {
	f, url := startFake(t)
	c, err := New(Config{Target: url + "/api", Clients: 2})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	require.NoError(t, c.Run(ctx))
	require.Greater(t, c.Summary().Accepted, int64(10))
	// A request cut off by the end of the run may have reached the server.
	require.InDelta(t, f.emojis.Load(), c.Summary().Accepted, 2)
}

func TestRunErrors(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(202)
	}))
	defer srv.Close()
	c, err := New(Config{Target: srv.URL, Clients: 2, Rate: 200, Duration: 500 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, c.Run(context.Background()))
	s := c.Summary()
	require.Positive(t, s.ByStatus[503])
	require.Equal(t, s.ByStatus[503], s.Errors)
	require.Contains(t, s.String(c.Endpoint(), c.cfg), "503: ")

	// Nothing listens here: every request fails in transport.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	c, err = New(Config{Target: dead, Clients: 1, Rate: 50, Duration: 300 * time.Millisecond})
	require.NoError(t, err)
	require.ErrorIs(t, c.Run(context.Background()), ErrNothingAccepted)
	require.Positive(t, c.Summary().ByStatus[0])
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Target: ""},
		{Target: "ftp://x"},
		{Target: "http://x", Clients: -1},
		{Target: "http://x", Rate: -1},
		{Target: "http://x", Batch: 1001},
		{Target: "http://x", Duration: -time.Second},
		{Target: "http://x", Emojis: []string{"🔥", "no"}},
	} {
		_, err := New(cfg)
		require.Error(t, err, "%+v", cfg)
	}
}

func TestDefaultEmojisAreValid(t *testing.T) {
	for _, e := range DefaultEmojis() {
		require.True(t, wire.ValidEmoji(e), "%q", e)
	}
}

func TestPickerTrends(t *testing.T) {
	start := time.Now()
	p := newPicker(DefaultEmojis(), start)
	r := rand.New(rand.NewPCG(1, 2))
	favourite := func(at time.Time) string {
		counts := map[string]int{}
		for range 5000 {
			counts[p.pick(r, at)]++
		}
		best := ""
		for e, n := range counts {
			if best == "" || n > counts[best] {
				best = e
			}
		}
		return best
	}
	require.Equal(t, DefaultEmojis()[0], favourite(start))
	require.Equal(t, DefaultEmojis()[1], favourite(start.Add(trendPeriod)))
}

func TestHistogram(t *testing.T) {
	h := newHistogram()
	require.Zero(t, h.quantile(0.5))
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	require.InEpsilon(t, float64(500*time.Millisecond), float64(h.quantile(0.5)), 0.05)
	require.InEpsilon(t, float64(990*time.Millisecond), float64(h.quantile(0.99)), 0.05)
	require.Equal(t, time.Second, h.quantile(1))
	h.record(time.Hour) // beyond the last bucket
	require.Equal(t, time.Hour, h.max)
	h.reset()
	require.Zero(t, h.n)
}

func TestThousands(t *testing.T) {
	require.Equal(t, "0", thousands(0))
	require.Equal(t, "999", thousands(999))
	require.Equal(t, "1,000", thousands(1000))
	require.Equal(t, "-1,234,567", thousands(-1234567))
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
