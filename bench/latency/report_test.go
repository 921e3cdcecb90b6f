package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/emostream/emostream/examples/emostream/wire"
)

// TestAnalyse checks the count check and the latencies on a made-up run:
// windows 10000 and 12000 (2 s, grace 500 ms) were measured.
func TestAnalyse(t *testing.T) {
	o := &options{duration: 4 * time.Second, rate: 10, batch: 1, clients: 1, window: 2 * time.Second,
		grace: 500 * time.Millisecond, partitions: 1, target: 200 * time.Millisecond}
	snd := newSender("http://x/api", 1, []string{"🔥", "🎉", "😂"}, 1, o.window)
	snd.accepted = map[wkey]int64{
		{10000, "🔥"}: 3, {10000, "🎉"}: 2, {10000, "😂"}: 1,
		{12000, "🔥"}: 4, {12000, "🎉"}: 1,
	}
	snd.postLat = []time.Duration{time.Millisecond, 3 * time.Millisecond}
	res := func(start int64, emoji string, n int64, lateMS int) arrival {
		r := wire.NewResult(start, o.window, emoji, n, 1000)
		closeAt := time.UnixMilli(r.WindowEnd).Add(o.grace)
		return arrival{at: closeAt.Add(time.Duration(lateMS) * time.Millisecond), res: r}
	}
	arrivals := []arrival{
		res(8000, "🔥", 9, 10),   // before the measurement: ignored
		res(10000, "🐢", 1, 10),  // the warm-up emoji: ignored
		res(10000, "🔥", 3, 20),  // match
		res(10000, "🎉", 5, 30),  // wrong count
		res(10000, "🔥", 3, 900), // duplicate, same value
		res(12000, "🔥", 4, 40),  // match
		res(12000, "😂", 7, 50),  // unexpected
		// (10000, 😂) and (12000, 🎉) missing
	}
	r := analyse(o, snd, arrivals, 10000, 12000)
	c := r.Check
	if c.Expected != 5 || c.Checked != 5 || c.Matching != 2 || c.WrongCount != 1 || c.Missing != 2 ||
		c.Unexpected != 1 || c.Duplicates != 1 || c.Conflicting != 0 || c.Windows != 2 || c.Received != 5 {
		t.Errorf("check = %+v", c)
	}
	if r.EndToEnd.Count != 4 || r.EndToEnd.Min != 20 || r.EndToEnd.Max != 50 {
		t.Errorf("e2e = %+v", r.EndToEnd)
	}
	if r.WindowComplete.Count != 2 || r.WindowComplete.Max != 50 || r.WindowComplete.Min != 30 {
		t.Errorf("window complete = %+v", r.WindowComplete)
	}
	if !r.MeetsTarget {
		t.Error("p99 50ms should meet a 200ms target")
	}
	if r.PostLatency.Count != 2 || r.PostLatency.Max != 3 {
		t.Errorf("post = %+v", r.PostLatency)
	}
	if len(r.Windows) != 2 || r.Windows[0].Start != 10000 || r.Windows[0].Results != 2 || r.Windows[1].Emojis != 11 {
		t.Errorf("windows = %+v", r.Windows)
	}

	// A window with a failed request is not checked.
	snd.uncertain[10000] = true
	r = analyse(o, snd, arrivals, 10000, 12000)
	if c := r.Check; c.Checked != 2 || c.Matching != 1 || c.Missing != 1 || c.Unexpected != 1 || c.Uncertain != 1 {
		t.Errorf("with an uncertain window: check = %+v", c)
	}
}

func TestScrapeMetricLine(t *testing.T) {
	srv := newMetricsServer(t, `# HELP stream_dead_letters_total x
stream_dead_letters_total{application_id="a",reason="late"} 3
stream_dead_letters_total{application_id="b",reason="late"} 2
stream_dead_letters_total{application_id="a",reason="other"} 7
stream_dead_letters_total_extra{reason="late"} 100
`)
	v, err := scrapeMetric(srv+"/metrics", "stream_dead_letters_total", `reason="late"`)
	if err != nil || v != 5 {
		t.Errorf("scrapeMetric = %v, %v; want 5", v, err)
	}
}

func newMetricsServer(t *testing.T, body string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
