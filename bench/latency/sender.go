package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/emostream/emostream/examples/emostream/wire"
)

// wkey names one expected result: a window (by its start, epoch ms) and an
// emoji.
type wkey struct {
	start int64
	emoji string
}

// sender POSTs emojis stamped with the current time at a steady rate and
// logs, per window and emoji, how many the API accepted (202): the counts
// the window results must show. A request's timestamp decides its window,
// as it does in the aggregator.
type sender struct {
	endpoint string
	http     *http.Client
	emojis   []string
	batch    int
	windowMS int64

	mu       sync.Mutex
	accepted map[wkey]int64
	// uncertain are windows that got a request answered other than 202:
	// part of such a batch may have been written (see the API's docs), so
	// their counts cannot be checked exactly.
	uncertain map[int64]bool
	postLat   []time.Duration
	byStatus  map[int]int64
	requests  int64
	emojisOK  int64
	errors    int64
	behind    int64
	firstTS   int64
	lastTS    int64
}

func newSender(endpoint string, clients int, emojis []string, batch int, window time.Duration) *sender {
	return &sender{
		endpoint: endpoint,
		http: &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				Proxy:               nil,
				MaxIdleConns:        clients,
				MaxIdleConnsPerHost: clients,
				MaxConnsPerHost:     clients,
				IdleConnTimeout:     90 * time.Second,
			},
		},
		emojis:    emojis,
		batch:     batch,
		windowMS:  window.Milliseconds(),
		accepted:  map[wkey]int64{},
		uncertain: map[int64]bool{},
		byStatus:  map[int]int64{},
	}
}

func (s *sender) windowOf(ts int64) int64 { return ts - ts%s.windowMS }

// run sends rate emojis per second in requests of s.batch with clients
// concurrent keep-alive connections until ctx ends. Requests are paced
// open-loop: a request slot no client is free to take is skipped and
// counted as behind, not queued.
func (s *sender) run(ctx context.Context, rate float64, clients int) {
	slots := make(chan struct{}, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i)))
			user := "latency-" + string(rune('a'+i%26))
			for {
				select {
				case <-ctx.Done():
					return
				case <-slots:
				}
				// A request under way when the run ends finishes, so its
				// window's count stays known.
				s.post(context.WithoutCancel(ctx), rng, user)
			}
		})
	}
	interval := time.Duration(float64(time.Second) * float64(s.batch) / rate)
	start := time.Now()
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				wg.Wait()
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			wg.Wait()
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			s.mu.Lock()
			s.behind++
			s.mu.Unlock()
		}
	}
}

// post sends one batch stamped with the current time and records the
// outcome.
func (s *sender) post(ctx context.Context, rng *rand.Rand, user string) {
	start := time.Now()
	ts := start.UnixMilli()
	reqs := make([]wire.Request, s.batch)
	for i := range reqs {
		reqs[i] = wire.Request{UserID: user, EmojiType: s.emojis[rng.IntN(len(s.emojis))], Timestamp: &ts}
	}
	body, _ := json.Marshal(reqs)
	status := 0
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		var res *http.Response
		if res, err = s.http.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
			_ = res.Body.Close()
			status = res.StatusCode
		}
	}
	lat := time.Since(start)
	if err != nil && ctx.Err() != nil {
		// Cut off by the end of the run: it may or may not have been
		// written, so its window's counts are uncertain.
		s.mu.Lock()
		s.uncertain[s.windowOf(ts)] = true
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.byStatus[status]++
	if status != http.StatusAccepted {
		s.errors++
		s.uncertain[s.windowOf(ts)] = true
		return
	}
	s.postLat = append(s.postLat, lat)
	s.emojisOK += int64(len(reqs))
	w := s.windowOf(ts)
	for _, r := range reqs {
		s.accepted[wkey{w, r.EmojiType}]++
	}
	if s.firstTS == 0 || ts < s.firstTS {
		s.firstTS = ts
	}
	s.lastTS = max(s.lastTS, ts)
}

// warmUp sends one emoji every interval until ctx ends, ignoring the
// answers: it gets the pipeline (API producer, aggregator, dashboard
// consumer) through its start-up before anything is measured.
func (s *sender) warmUp(ctx context.Context, emoji string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		body, _ := json.Marshal(wire.Request{UserID: "latency-warmup", EmojiType: emoji})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			if res, err := s.http.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
