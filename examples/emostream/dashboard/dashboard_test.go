package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/dashboard"
	"github.com/emostream/emostream/examples/emostream/internal/httpx"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// startDashboard runs a dashboard on brokers/topic until the test ends and
// returns its base URL once it reads the topic.
func startDashboard(t *testing.T, cfg dashboard.Config) (*dashboard.Server, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := dashboard.New(cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/", s.Handler())
	mux.Handle("/healthz", httpx.Health(s.Ready))
	mux.Handle("/metrics", httpx.Metrics(s.Registry()))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.RegisterOnShutdown(s.CloseStreams)
	srv.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		s.CloseStreams()
		srv.Close()
		cancel()
		require.NoError(t, <-done)
	})
	require.Eventually(t, func() bool { return s.Ready() == nil }, 30*time.Second, 20*time.Millisecond, "dashboard never became ready")
	return s, srv.URL
}

func result(start int64, emoji string, count int64) wire.Result {
	return wire.NewResult(start, 2*time.Second, emoji, count, 1000)
}

func toKV(rs ...wire.Result) []kafkatest.KV {
	var kvs []kafkatest.KV
	for _, r := range rs {
		b, _ := r.Marshal()
		kvs = append(kvs, kafkatest.KV{Key: r.EmojiType, Value: string(b)})
	}
	return kvs
}

// sse reads Server-Sent Events from a stream.
type sse struct {
	body io.Closer
	r    *bufio.Reader
}

func openEvents(t *testing.T, base string) *sse {
	t.Helper()
	res, err := http.Get(base + "/events")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	s := &sse{body: res.Body, r: bufio.NewReader(res.Body)}
	t.Cleanup(func() { res.Body.Close() })
	// The server subscribes before it writes anything, so after the
	// greeting no result can be missed.
	for {
		line, err := s.r.ReadString('\n')
		require.NoError(t, err)
		if line == ": connected\n" {
			return s
		}
	}
}

// next returns the next event's name and data, skipping comments.
func (s *sse) next(t *testing.T) (string, string) {
	t.Helper()
	var event, data string
	for {
		line, err := s.r.ReadString('\n')
		require.NoError(t, err)
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && data != "":
			return event, data
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			require.Empty(t, data, "one data line per event")
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func getJSON(t *testing.T, url string, into any) int {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, into), "%s", b)
	return res.StatusCode
}

func TestDashboard(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			topic := kafkatest.UniqueName(t, "topic2")
			kafkatest.CreateTopic(t, brokers, topic, 2)

			// Results from before the dashboard started: history only.
			old := []wire.Result{result(0, "🔥", 10), result(0, "👍🏽", 3), result(2000, "🔥", 1500)}
			kafkatest.ProduceStrings(t, brokers, topic, toKV(old...))

			_, base := startDashboard(t, dashboard.Config{Brokers: brokers, Topic: topic, Grace: 500 * time.Millisecond})
			var got []wire.Result
			require.Equal(t, 200, getJSON(t, base+"/api/windows", &got))
			require.Equal(t, []wire.Result{old[2], old[0], old[1]}, got, "newest window first, larger counts first")

			events := openEvents(t, base)
			now := time.Now().UnixMilli() / 2000 * 2000
			live := []wire.Result{result(now, "🇮🇳", 7), result(now, "❤️", 2500)}
			recs := toKV(live...)
			// Neither an invalid record nor a duplicate reaches viewers twice.
			recs = append(recs, kafkatest.KV{Key: "x", Value: `{"not":"a result"}`})
			kafkatest.ProduceStrings(t, brokers, topic, recs)

			seen := map[string]wire.Result{}
			for range live {
				name, data := events.next(t)
				require.Equal(t, "window", name)
				r, err := wire.DecodeResult([]byte(data))
				require.NoError(t, err)
				want, _ := r.Marshal()
				require.Equal(t, string(want), data, "data is the topic2 value")
				seen[r.EmojiType] = r
			}
			require.Equal(t, map[string]wire.Result{"🇮🇳": live[0], "❤️": live[1]}, seen)

			require.Eventually(t, func() bool {
				got = nil
				getJSON(t, base+"/api/windows?limit=2", &got)
				return len(got) == 2 && got[0].WindowStart == now
			}, 10*time.Second, 20*time.Millisecond)
			require.Equal(t, []wire.Result{live[1], live[0]}, got)
			got = nil
			getJSON(t, base+"/api/windows?limit=1000", &got)
			require.Len(t, got, 5, "the invalid record is not a result")

			var e map[string]any
			require.Equal(t, 400, getJSON(t, base+"/api/windows?limit=zero", &e))
			require.Contains(t, e["error"], "limit")
			require.Equal(t, 400, getJSON(t, base+"/api/windows?limit=-3", &e))

			res, err := http.Post(base+"/events", "text/plain", nil)
			require.NoError(t, err)
			res.Body.Close()
			require.Equal(t, 405, res.StatusCode)

			res, err = http.Get(base + "/")
			require.NoError(t, err)
			page, _ := io.ReadAll(res.Body)
			res.Body.Close()
			require.Equal(t, 200, res.StatusCode)
			require.Contains(t, string(page), `data-grace-ms="500"`)
			require.Contains(t, string(page), `/static/app.js`)
			require.NotContains(t, string(page), "http://", "no third-party assets")
			require.Contains(t, res.Header.Get("Content-Security-Policy"), "default-src 'self'")

			for _, asset := range []string{"/static/app.js", "/static/app.css"} {
				res, err = http.Get(base + asset)
				require.NoError(t, err)
				res.Body.Close()
				require.Equal(t, 200, res.StatusCode, asset)
			}
			res, err = http.Get(base + "/nope")
			require.NoError(t, err)
			res.Body.Close()
			require.Equal(t, 404, res.StatusCode)

			res, err = http.Get(base + "/metrics")
			require.NoError(t, err)
			metrics, _ := io.ReadAll(res.Body)
			res.Body.Close()
			require.Contains(t, string(metrics), "emostream_dashboard_invalid_results_total 1")
			require.Contains(t, string(metrics), "emostream_dashboard_viewers 1")
		})
	}
}

// TestManyViewers checks the fan-out: one consumer, every viewer gets every
// result in order, and a viewer that does not read holds nobody up
// (dropping it when it falls too far behind is TestHubDropsSlowViewers).
func TestManyViewers(t *testing.T) {
	brokers := kafkatest.EmbeddedBrokers(t)
	topic := kafkatest.UniqueName(t, "topic2")
	kafkatest.CreateTopic(t, brokers, topic, 1)
	_, base := startDashboard(t, dashboard.Config{Brokers: brokers, Topic: topic})

	viewers := make([]*sse, 5)
	for i := range viewers {
		viewers[i] = openEvents(t, base)
	}
	stalled := openEvents(t, base) // never reads

	var rs []wire.Result
	for i := range 200 {
		rs = append(rs, result(int64(i)*2000, "🔥", int64(i+1)))
	}
	kafkatest.ProduceStrings(t, brokers, topic, toKV(rs...))
	for _, v := range viewers {
		for i := range rs {
			_, data := v.next(t)
			require.Equal(t, fmt.Sprintf(`"count":%d,`, i+1), data[strings.Index(data, `"count"`):strings.Index(data, `"bursts"`)], "in order")
		}
	}
	_ = stalled
}

// TestEventsOutliveReadTimeout guards against net/http cancelling a
// long-lived response once the server's ReadTimeout passes.
func TestEventsOutliveReadTimeout(t *testing.T) {
	brokers := kafkatest.EmbeddedBrokers(t)
	topic := kafkatest.UniqueName(t, "topic2")
	kafkatest.CreateTopic(t, brokers, topic, 1)
	s, err := dashboard.New(dashboard.Config{Brokers: brokers, Topic: topic, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	require.Eventually(t, func() bool { return s.Ready() == nil }, 30*time.Second, 20*time.Millisecond)

	srv := httpx.NewServer(s.Handler(), slog.New(slog.DiscardHandler))
	srv.ReadTimeout = 300 * time.Millisecond
	srv.RegisterOnShutdown(s.CloseStreams)
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = srv
	ts.Start()
	defer ts.Close()
	defer s.CloseStreams() // httptest's Close waits for handlers; streams never end alone

	events := openEvents(t, ts.URL)
	time.Sleep(time.Second)
	r := result(time.Now().UnixMilli()/2000*2000, "🔥", 1)
	kafkatest.ProduceStrings(t, brokers, topic, toKV(r))
	name, data := events.next(t)
	require.Equal(t, "window", name)
	want, _ := r.Marshal()
	require.Equal(t, string(want), data)
}
