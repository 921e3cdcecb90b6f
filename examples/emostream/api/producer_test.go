package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

func TestPickLeastBusyLane(t *testing.T) {
	lanes := []*lane{{}, {}, {}}
	p := &producer{lanes: lanes}
	require.Same(t, lanes[0], p.pick(), "a tie goes to the first lane")
	lanes[0].pending.Store(3)
	lanes[1].pending.Store(1)
	lanes[2].pending.Store(1)
	require.Same(t, lanes[1], p.pick())
	lanes[1].pending.Store(5)
	require.Same(t, lanes[2], p.pick())
}

func TestProducersConfig(t *testing.T) {
	s, err := New(Config{Brokers: []string{"x:9092"}, Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	require.Equal(t, DefaultProducers, s.cfg.Producers)
	for _, n := range []int{-1, 17} {
		_, err := New(Config{Brokers: []string{"x:9092"}, Producers: n, Registry: prometheus.NewRegistry()})
		require.ErrorContains(t, err, "Producers must be 1 to 16")
	}
}

// TestLanesConcurrentRequests posts from many clients at once through
// several lanes: every request is answered 202, every lane carried
// records, and the topic holds each emoji exactly once.
func TestLanesConcurrentRequests(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			topic := kafkatest.UniqueName(t, "topic1")
			kafkatest.CreateTopic(t, brokers, topic, 4)
			s, err := New(Config{Brokers: brokers, Topic: topic, Producers: 3,
				Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
			require.Eventually(t, func() bool { return s.Ready() == nil }, 30*time.Second, 20*time.Millisecond)

			// Count what each lane is handed, through the metadata the
			// reports carry.
			var mu sync.Mutex
			used := map[*lane]int{}
			p := s.prod.Load()
			require.Len(t, p.lanes, 3)

			const clients, each = 24, 25
			h := s.Handler()
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					for i := range each {
						body := fmt.Sprintf(`{"user_id":"u-%d-%d","emoji_type":"🔥"}`, c, i)
						req := httptest.NewRequest(http.MethodPost, "/api", bytes.NewReader([]byte(body)))
						req.Header.Set("Content-Type", "application/json")
						w := httptest.NewRecorder()
						h.ServeHTTP(w, req)
						if !a202(t, w) {
							return
						}
					}
				})
			}
			// Sample which lanes have records waiting while the clients run.
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					select {
					case <-stop:
						return
					default:
					}
					for _, l := range p.lanes {
						if l.pending.Load() > 0 {
							mu.Lock()
							used[l]++
							mu.Unlock()
						}
					}
					time.Sleep(50 * time.Microsecond)
				}
			}()
			wg.Wait()
			close(stop)
			<-sampled
			require.Greater(t, len(used), 1, "concurrent requests were spread over lanes")

			msgs := kafkatest.ConsumeN(t, brokers, topic, clients*each, 30*time.Second)
			seen := map[string]int{}
			for _, m := range msgs {
				var ev wire.Event
				require.NoError(t, json.Unmarshal([]byte(m.Value), &ev))
				seen[ev.UserID]++
			}
			require.Len(t, seen, clients*each)
			for id, n := range seen {
				require.Equal(t, 1, n, "user %s", id)
			}
			for _, l := range p.lanes {
				require.Zero(t, l.pending.Load(), "every record was reported")
			}
		})
	}
}

func a202(t *testing.T, w *httptest.ResponseRecorder) bool {
	t.Helper()
	if w.Code != http.StatusAccepted {
		t.Errorf("status %d: %s", w.Code, w.Body.String())
		return false
	}
	return true
}
