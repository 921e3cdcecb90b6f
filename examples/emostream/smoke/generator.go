package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emostream/emostream/examples/emostream/wire"
)

// Generator POSTs Total emojis to the ingest API in batches, from Workers
// goroutines, at a steady Rate. Every emoji has its own user_id, Prefix
// followed by its sequence number, and the current time as its timestamp.
//
// It never retries: an emoji whose request failed is recorded as failed
// and not sent again. A request that failed after reaching the API (503,
// timeout, reset) may or may not have written its emojis to topic1, which
// is what any at-least-once producer's failed send means; only a refused
// connection proves nothing was written.
type Generator struct {
	// URL is the API's POST endpoint, e.g. http://127.0.0.1:8080/api.
	URL string
	// Prefix starts every user_id.
	Prefix string
	// Total is how many emojis to send; Batch how many per request.
	Total, Batch int
	// Rate is the target in emojis per second.
	Rate float64
	// Workers is the number of concurrent clients.
	Workers int
	// Emojis are drawn uniformly from this list.
	Emojis []string
	// Client sends the requests; nil uses a client with a 20 s timeout.
	Client *http.Client
	// Progress, if set, receives a line every ProgressEvery.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Stop, if set, ends the run early when closed: no new request is
	// started, the ones in flight finish, and the emojis never sent stay
	// StatusPending. (Cancelling Run's context instead aborts the requests
	// in flight too.)
	Stop <-chan struct{}

	status  []Status
	ackedAt []int64 // by batch: wall clock of the 202, epoch ms

	requests, acked, failed, unsent atomic.Int64
	http503, httpOther, netErrors   atomic.Int64
	minTS, maxTS                    atomic.Int64
	maxAckNanos, slowAcks           atomic.Int64

	mu       sync.Mutex
	problems []string
}

// GenStats are the generator's counts after Run.
type GenStats struct {
	Requests, Acked, Failed, Unsent int64
	// Failed and unsent requests by cause (in requests, not emojis).
	HTTP503, HTTPOther, NetErrors int64
	// MinTS and MaxTS bound the event timestamps sent, in epoch ms.
	MinTS, MaxTS int64
	// MaxAck is the longest time a request took to get its 202; SlowAcks
	// counts the 202s that took longer than SlowAck.
	MaxAck   time.Duration
	SlowAcks int64
	Elapsed  time.Duration
}

// SlowAck is how long a request may take to be acknowledged: the API's
// contract is a 503 after at most 5 s of waiting for Kafka, so a 202 later
// than that (plus margin for a busy machine) is worth a look.
const SlowAck = 6 * time.Second

// Status returns the outcome of every emoji by sequence number. Call it
// after Run returned.
func (g *Generator) Status() []Status { return g.status }

// AckedAt returns when emoji seq's request got its 202 (epoch ms), or 0
// when it did not. Call it after Run returned.
func (g *Generator) AckedAt(seq int) int64 {
	if g.Batch < 1 || seq < 0 || seq/g.Batch >= len(g.ackedAt) {
		return 0
	}
	return g.ackedAt[seq/g.Batch]
}

// Problems returns API answers that break the contract (e.g. 400 for valid
// emojis, or 202 with the wrong count).
func (g *Generator) Problems() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.problems...)
}

func (g *Generator) problem(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.problems) < 20 {
		g.problems = append(g.problems, fmt.Sprintf(format, args...))
	}
}

// Stats returns the counts so far.
func (g *Generator) Stats() GenStats {
	return GenStats{
		Requests: g.requests.Load(), Acked: g.acked.Load(), Failed: g.failed.Load(), Unsent: g.unsent.Load(),
		HTTP503: g.http503.Load(), HTTPOther: g.httpOther.Load(), NetErrors: g.netErrors.Load(),
		MinTS: g.minTS.Load(), MaxTS: g.maxTS.Load(),
		MaxAck: time.Duration(g.maxAckNanos.Load()), SlowAcks: g.slowAcks.Load(),
	}
}

// maxBehind is how far the pacer may fall behind its schedule (while the
// API is slow or away) before it gives up catching up: after an outage the
// rate stays steady instead of bursting.
const maxBehind = time.Second

// Run sends all emojis (or stops early when ctx ends) and returns the
// stats. Emojis not sent because ctx ended stay StatusPending.
func (g *Generator) Run(ctx context.Context) GenStats {
	g.status = make([]Status, g.Total)
	g.ackedAt = make([]int64, (g.Total+g.Batch-1)/g.Batch)
	if g.Client == nil {
		g.Client = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: g.Workers, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	}
	g.minTS.Store(-1)
	start := time.Now()
	slots := make(chan int) // batch numbers
	var wg sync.WaitGroup
	for w := range g.Workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(w)))
			for b := range slots {
				g.send(ctx, rng, b)
			}
		})
	}
	progressDone := make(chan struct{})
	if g.Progress != nil && g.ProgressEvery > 0 {
		go g.progress(start, progressDone)
	}

	batches := (g.Total + g.Batch - 1) / g.Batch
	interval := time.Duration(float64(time.Second) * float64(g.Batch) / g.Rate)
	base := start
pace:
	for b := range batches {
		if ctx.Err() != nil {
			break
		}
		due := base.Add(time.Duration(b) * interval)
		if behind := time.Since(due); behind > maxBehind {
			base = base.Add(behind - maxBehind)
		} else if behind < 0 {
			t := time.NewTimer(-behind)
			select {
			case <-ctx.Done():
				t.Stop()
				break pace
			case <-g.Stop:
				t.Stop()
				break pace
			case <-t.C:
			}
		}
		select {
		case <-ctx.Done():
			break pace
		case <-g.Stop:
			break pace
		case slots <- b:
		}
	}
	close(slots)
	wg.Wait()
	close(progressDone)
	s := g.Stats()
	s.Elapsed = time.Since(start)
	return s
}

func (g *Generator) progress(start time.Time, done <-chan struct{}) {
	t := time.NewTicker(g.ProgressEvery)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		s := g.Stats()
		sent := s.Acked + s.Failed + s.Unsent
		fmt.Fprintf(g.Progress, "smoke: +%3.0fs generated %d/%d emojis: %d acked, %d failed, %d unsent; %.0f/s\n",
			time.Since(start).Seconds(), sent, g.Total, s.Acked, s.Failed, s.Unsent,
			float64(sent-last)/g.ProgressEvery.Seconds())
		last = sent
	}
}

// send posts batch b and records its outcome.
func (g *Generator) send(ctx context.Context, rng *rand.Rand, b int) {
	first := b * g.Batch
	n := min(g.Batch, g.Total-first)
	now := time.Now().UnixMilli()
	reqs := make([]wire.Request, n)
	for i := range reqs {
		reqs[i] = wire.Request{UserID: g.Prefix + strconv.Itoa(first+i), EmojiType: g.Emojis[rng.IntN(len(g.Emojis))], Timestamp: &now}
	}
	body, err := json.Marshal(reqs)
	if err != nil {
		panic(err) // cannot happen for these values
	}
	for {
		cur := g.maxTS.Load()
		if now <= cur || g.maxTS.CompareAndSwap(cur, now) {
			break
		}
	}
	g.minTS.CompareAndSwap(-1, now)
	g.requests.Add(1)
	outcome := g.post(ctx, body, n, first)
	for i := range n {
		g.status[first+i] = outcome
	}
	switch outcome {
	case StatusAcked:
		g.ackedAt[b] = time.Now().UnixMilli()
		g.acked.Add(int64(n))
	case StatusUnsent:
		g.unsent.Add(int64(n))
	default:
		g.failed.Add(int64(n))
	}
}

func (g *Generator) post(ctx context.Context, body []byte, n, first int) Status {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(body))
	if err != nil {
		panic(err) // a bad URL is caught before Run
	}
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	resp, err := g.Client.Do(req)
	if err != nil {
		g.netErrors.Add(1)
		if refused(err) {
			return StatusUnsent
		}
		return StatusFailed
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	switch {
	case resp.StatusCode == http.StatusAccepted:
		took := time.Since(sent)
		for {
			cur := g.maxAckNanos.Load()
			if int64(took) <= cur || g.maxAckNanos.CompareAndSwap(cur, int64(took)) {
				break
			}
		}
		if took > SlowAck {
			g.slowAcks.Add(1)
		}
		var ack struct {
			Accepted *int `json:"accepted"`
		}
		if json.Unmarshal(data, &ack) != nil || ack.Accepted == nil || *ack.Accepted != n {
			g.problem("POST of %s%d..%d (%d emojis): 202 with body %q", g.Prefix, first, first+n-1, n, data)
		}
		// 202 means Kafka acknowledged every record, whatever the body;
		// a broken body is reported above.
		return StatusAcked
	case resp.StatusCode == http.StatusServiceUnavailable:
		g.http503.Add(1)
		return StatusFailed
	default:
		g.httpOther.Add(1)
		if err == nil {
			g.problem("POST of %s%d..%d: HTTP %d %q", g.Prefix, first, first+n-1, resp.StatusCode, data)
		}
		return StatusFailed
	}
}

// refused tells whether err means the connection could not be opened, so
// the request never left this process.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
