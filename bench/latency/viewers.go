package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emostream/emostream/bench/internal/harness"
)

// seed hashes data lines; viewers keep hashes rather than the lines, so
// thousands of them fit in little memory.
var seed = maphash.MakeSeed()

func hashLine(b []byte) uint64 { return maphash.Bytes(seed, b) }

// crowd is -viewers extra event streams besides the subscriber. Each one
// only notes when each data line arrived, by hash; the analysis matches
// them against the subscriber's decoded results.
type crowd struct {
	viewers []*lightViewer
	refused atomic.Int64 // answered other than 200 while connecting
	failed  atomic.Int64 // could not connect at all
}

type lightViewer struct {
	mu sync.Mutex
	// seen lists every data line as it arrived, by hash; the analysis
	// keeps the first arrival of each. Appending costs the reader less
	// than a map, and the entries hold no pointers, so the garbage
	// collector does not scan the millions of a 5,000-viewer run.
	seen  []sighting
	ended bool // the stream ended
}

// sighting is a data line's hash and when the read that brought it
// returned, in Unix nanoseconds.
type sighting struct{ hash, at uint64 }

// stampReader notes when each read of the stream returned: every line in
// what that read brought arrived then, however long the viewer's goroutine
// takes to go through them.
type stampReader struct {
	r  io.Reader
	at int64
}

func (s *stampReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.at = time.Now().UnixNano()
	return n, err
}

// ended counts the streams that have ended; before the benchmark cancels
// them, none should have.
func (c *crowd) ended() int {
	n := 0
	for _, v := range c.viewers {
		v.mu.Lock()
		if v.ended {
			n++
		}
		v.mu.Unlock()
	}
	return n
}

// openCrowd opens n streams to url, at most 64 connecting at once, and
// returns once every one is open or failed. ctx ends them.
func openCrowd(ctx context.Context, url string, n int) *crowd {
	c := &crowd{}
	tr := &http.Transport{
		Proxy:              nil,
		DisableCompression: true,
		DialContext:        (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxConnsPerHost:    0,
	}
	client := &http.Client{Transport: tr}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				c.failed.Add(1)
				return
			}
			res, err := client.Do(req)
			if err != nil {
				c.failed.Add(1)
				return
			}
			if res.StatusCode != http.StatusOK {
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				c.refused.Add(1)
				return
			}
			v := &lightViewer{seen: make([]sighting, 0, 512)}
			mu.Lock()
			c.viewers = append(c.viewers, v)
			mu.Unlock()
			go v.read(res.Body)
		}()
	}
	wg.Wait()
	return c
}

func (v *lightViewer) read(body io.ReadCloser) {
	defer body.Close()
	stamp := &stampReader{r: body}
	r := bufio.NewReaderSize(stamp, 4096)
	prefix := []byte("data:")
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			v.mu.Lock()
			v.ended = true
			v.mu.Unlock()
			return
		}
		if !bytes.HasPrefix(line, prefix) {
			continue
		}
		h := hashLine(bytes.TrimSpace(line[len(prefix):]))
		v.mu.Lock()
		v.seen = append(v.seen, sighting{hash: h, at: uint64(stamp.at)})
		v.mu.Unlock()
	}
}

// viewersInfo is the "viewers" part of the report.
type viewersInfo struct {
	Requested int   `json:"requested"`
	Connected int   `json:"connected"`
	Refused   int64 `json:"refused"`
	Failed    int64 `json:"failed"`
	// BrokeEarly are streams that ended before the measurement did.
	BrokeEarly int `json:"broke_early"`
	// Complete are viewers that got every measured result the subscriber
	// got.
	Complete int `json:"complete"`
	// MissingResults sums the measured results that viewers lacked.
	MissingResults int `json:"missing_results"`
	// Delivery is receive time − (window_end + grace) of every measured
	// result at every viewer, in ms.
	Delivery harness.Dist `json:"delivery_ms"`
	// DeliveryUnderLoad is Delivery for the windows that closed while
	// the emojis were still being sent (closed by stream time); the rest
	// closed by the wall clock after the input stopped.
	DeliveryUnderLoad harness.Dist `json:"delivery_under_load_ms"`
	// Spread is, per result, the last viewer's receive time minus the
	// first one's, in ms.
	Spread harness.Dist `json:"spread_ms"`
	// RSSBeforeMB and RSSAfterMB are emostream's resident memory just before
	// the viewers connected and once they all had; PerViewerKB is the
	// difference per connected viewer.
	// ServerArrived is, from emostream's own histogram, when the results
	// reached the dashboard: arrival − (window_end + grace).
	ServerArrived *serverHist `json:"server_result_latency_ms,omitempty"`
	// ServerFanout is, from emostream's own histogram, the time from a
	// clump of results' first broadcast to the dashboard's last write of
	// it to a viewer's socket: the server's part of Spread, without the
	// readers (this process) that share the CPU. Absent for a build
	// without the writer pool.
	ServerFanout *serverHist `json:"server_fanout_ms,omitempty"`
	RSSBeforeMB  float64     `json:"rss_before_mb"`
	RSSAfterMB   float64     `json:"rss_after_mb"`
	PerViewerKB  float64     `json:"rss_per_viewer_kb"`
	MeetsTarget  bool        `json:"meets_target"`
}

// analyseCrowd compares every viewer's arrivals with the subscriber's
// measured results (first arrival per window and emoji).
//
// Results of windows that closed (window_end + grace) before sendEnd,
// while emojis still arrived, are also summarised apart: they close by
// stream time, the later ones by the wall clock once the input stopped.
func analyseCrowd(c *crowd, requested, brokeEarly int, measured []arrival, grace, target time.Duration, sendEnd time.Time) viewersInfo {
	vi := viewersInfo{Requested: requested, Connected: len(c.viewers), Refused: c.refused.Load(), Failed: c.failed.Load(),
		BrokeEarly: brokeEarly}
	var delivery, underLoad []time.Duration
	first := make([]time.Time, len(measured))
	last := make([]time.Time, len(measured))
	for _, v := range c.viewers {
		v.mu.Lock()
		arrived := make(map[uint64]uint64, len(v.seen)) // first arrival per line
		for _, s := range v.seen {
			if at, ok := arrived[s.hash]; !ok || s.at < at {
				arrived[s.hash] = s.at
			}
		}
		v.mu.Unlock()
		missing := 0
		for i, a := range measured {
			ns, ok := arrived[a.hash]
			if !ok {
				missing++
				continue
			}
			at := time.Unix(0, int64(ns))
			closed := time.UnixMilli(a.res.WindowEnd).Add(grace)
			delivery = append(delivery, at.Sub(closed))
			if closed.Before(sendEnd) {
				underLoad = append(underLoad, at.Sub(closed))
			}
			if first[i].IsZero() || at.Before(first[i]) {
				first[i] = at
			}
			if at.After(last[i]) {
				last[i] = at
			}
		}
		if missing == 0 && len(measured) > 0 {
			vi.Complete++
		}
		vi.MissingResults += missing
	}
	var spread []time.Duration
	for i := range measured {
		if !first[i].IsZero() {
			spread = append(spread, last[i].Sub(first[i]))
		}
	}
	vi.Delivery = harness.Summarise(delivery)
	vi.DeliveryUnderLoad = harness.Summarise(underLoad)
	vi.Spread = harness.Summarise(spread)
	vi.MeetsTarget = vi.Connected == requested && vi.Complete == requested && vi.Delivery.Count > 0 &&
		vi.Delivery.P99 <= float64(target)/float64(time.Millisecond)
	return vi
}

// rssMB is a process's resident memory now, from /proc (Linux).
func rssMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func (vi viewersInfo) print(w io.Writer, target float64) {
	fmt.Fprintf(w, "  viewers      %d of %d connected (%d refused, %d failed), %d broke early; %d complete, %d results missing in all\n",
		vi.Connected, vi.Requested, vi.Refused, vi.Failed, vi.BrokeEarly, vi.Complete, vi.MissingResults)
	fmt.Fprintf(w, "  delivery     %s\n", vi.Delivery)
	fmt.Fprintf(w, "               (every result at every viewer, beyond window_end + grace)\n")
	fmt.Fprintf(w, "  under load   %s\n", vi.DeliveryUnderLoad)
	fmt.Fprintf(w, "               (the same for windows that closed while emojis were still sent)\n")
	fmt.Fprintf(w, "  spread       %s\n", vi.Spread)
	fmt.Fprintf(w, "               (per result: last viewer − first viewer)\n")
	if vi.ServerArrived != nil {
		fmt.Fprintf(w, "  server       results reached the dashboard: %s\n", vi.ServerArrived)
		fmt.Fprintf(w, "               (emostream's histogram: arrival − (window_end + grace), bucket bounds)\n")
	}
	if vi.ServerFanout != nil {
		fmt.Fprintf(w, "  fan-out      last write to a viewer's socket: %s\n", vi.ServerFanout)
		fmt.Fprintf(w, "               (emostream's histogram: per clump, first broadcast → last write)\n")
	}
	fmt.Fprintf(w, "  memory       emostream RSS %.0f MiB before the viewers, %.0f MiB with them: %.1f KiB per viewer\n",
		vi.RSSBeforeMB, vi.RSSAfterMB, vi.PerViewerKB)
	verdict := "met"
	if !vi.MeetsTarget {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "  target       every viewer connected and complete, delivery p99 ≤ %s: %s\n", harness.FormatMS(target), verdict)
}
