package dashboard_test

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/dashboard"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// chromium finds a headless-capable Chromium. Locally a missing browser
// skips the test loudly; in CI (CI=true) it fails it, because .ci/run
// installs Debian's chromium.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found: CI must run the dashboard browser test (.ci/run installs it with apt-get install chromium)")
	}
	t.Skip(strings.Join([]string{
		"",
		"************************************************************************",
		"* SKIPPED: dashboard browser test. No chromium on PATH.                *",
		"* Install it (Debian: apt-get install chromium) to run this test.      *",
		"************************************************************************",
	}, "\n"))
	return ""
}

// TestBrowser loads the dashboard in headless Chromium, writes window
// results to topic2 and checks that they are drawn on the chart and fly up
// as bursts. The dashboard takes one viewer only: the page, refused at
// first, must tell so and connect by itself once the slot frees. It checks
// the idle hint, whole-number y-axis labels, emojis drawn in colour, and
// bursts that stay clear of the cards. It saves a screenshot in the test's
// temp dir and, when SCREENSHOT_DIR is set, there too.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	brokers := kafkatest.EmbeddedBrokers(t)
	topic := kafkatest.UniqueName(t, "topic2")
	kafkatest.CreateTopic(t, brokers, topic, 2)
	_, base := startDashboard(t, dashboard.Config{Brokers: brokers, Topic: topic, Window: 2 * time.Second, Grace: 500 * time.Millisecond,
		MaxViewers: 1})
	blocker := openEvents(t, base) // takes the only slot

	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()

	require.NoError(t, chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#status[data-state="full"]`)),
	), "the page is refused: one viewer at most")
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#status`)))
	require.NoError(t, err)
	require.Contains(t, status, "too many viewers, retrying in")

	// Idle: no results yet, so the page shows how to send an emoji.
	var idle string
	require.Eventually(t, func() bool {
		idle, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('idle').hidden ? '' : document.getElementById('idle-curl').textContent`))
		require.NoError(t, err)
		return idle != ""
	}, 10*time.Second, 50*time.Millisecond, "the idle hint shows")
	require.Contains(t, idle, "curl -H 'Content-Type: application/json'")
	require.Contains(t, idle, base+"/api")

	// The slot frees: the page gets in by itself (Retry-After 5 s plus
	// jitter) without a reload.
	require.NoError(t, blocker.body.Close())
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	require.NoError(t, chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(`#status[data-state="live"]`))),
		"the refused page reconnects once a slot is free")
	wcancel()
	type connState struct {
		Connects int `json:"connects"`
		Refused  int `json:"refused"`
	}
	cs, err := chromedp.Run(ctx, chromedp.Evaluate[connState](`window.emostream`))
	require.NoError(t, err)
	require.Equal(t, 1, cs.Connects)
	require.GreaterOrEqual(t, cs.Refused, 1)

	// Small counts: the y axis still counts in whole numbers.
	kafkatest.ProduceStrings(t, brokers, topic, toKV(wire.NewResult(time.Now().UnixMilli()/2000*2000-4000, 2*time.Second, "😂", 3, 1000)))
	require.Eventually(t, func() bool {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.emostream.live && document.querySelectorAll('#chart .y-label').length`))
		require.NoError(t, err)
		return n > 0
	}, 20*time.Second, 50*time.Millisecond)
	small := yLabels(t, ctx)
	require.Equal(t, []int{0, 1, 2, 3}, small, "y axis for a peak of 3")

	// 30 windows of 5 emojis, the newest closed just now (as the
	// aggregator would emit it), with counts that wave so the chart has
	// shape, and a few thousand per window so there are bursts.
	emojis := []string{"🔥", "👍🏽", "❤️", "🇮🇳", "👩‍💻"}
	now := time.Now().Add(-2500*time.Millisecond).UnixMilli()/2000*2000 - 2000
	var results []wire.Result
	for w := range 30 {
		start := now - int64(29-w)*2000
		for i, e := range emojis {
			count := int64(400*(len(emojis)-i)) + int64(900*(1+math.Sin(float64(w)/4+float64(i))))
			results = append(results, wire.NewResult(start, 2*time.Second, e, count, 1000))
		}
	}
	kafkatest.ProduceStrings(t, brokers, topic, toKV(results...))

	type probeResult struct {
		Results int      `json:"results"`
		Bursts  int      `json:"bursts"`
		Flying  int      `json:"flying"`
		Lines   []string `json:"lines"`
		Points  int      `json:"points"`
		Top     []string `json:"top"`
		Rate    string   `json:"rate"`
		Latency string   `json:"latency"`
	}
	var seen probeResult
	const probe = `(() => {
		const lines = [...document.querySelectorAll('#chart polyline')];
		return {
			results: window.emostream.results,
			bursts: window.emostream.burstsSpawned,
			flying: document.querySelectorAll('#bursts .burst').length,
			lines: lines.map(l => l.dataset.emoji),
			points: lines.length ? lines[0].getAttribute('points').trim().split(/\s+/).length : 0,
			top: [...document.querySelectorAll('#top li')].map(li => li.dataset.emoji || ''),
			rate: document.getElementById('rate').textContent,
			latency: document.getElementById('latency').textContent,
		};
	})()`
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		seen, err = chromedp.Run(ctx, chromedp.Evaluate[probeResult](probe))
		require.NoError(t, err)
		if seen.Results == len(results)+1 && len(seen.Lines) == len(emojis)+1 && seen.Flying > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("page did not show the results: %+v", seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.ElementsMatch(t, append(slices.Clone(emojis), "😂"), seen.Lines, "one chart line per emoji")
	require.Equal(t, 60, seen.Points, "a point per window of the last 60")
	require.Positive(t, seen.Bursts)
	require.Equal(t, emojis[0], seen.Top[0], "top emoji of the last minute")
	require.NotEqual(t, "–", seen.Rate, "ingest rate shown")
	require.True(t, strings.HasSuffix(seen.Latency, " ms"), "latency shown: %q", seen.Latency)

	big := yLabels(t, ctx)
	require.GreaterOrEqual(t, len(big), 3, "gridlines: %v", big)
	require.Equal(t, 0, big[0])

	// The emojis are drawn from the colour font: their pixels are not all
	// grey, as a monochrome outline in the text colour would be. 😂 was
	// such an outline with the old font stack.
	for _, e := range []string{"🔥", "😂"} {
		shot, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(`#top li[data-emoji="`+e+`"] .emoji`), chromedp.NodeVisible))
		require.NoError(t, err)
		share := colourfulShare(t, shot)
		t.Logf("%s: %.0f%% coloured pixels", e, 100*share)
		require.Greater(t, share, 0.05, "%s renders in colour", e)
	}
	family, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('#top .emoji')).fontFamily`))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(family, `"Noto Color Emoji"`), "emoji font stack: %s", family)

	// Let the bursts rise into view before the picture; none may cover a
	// card or panel on the way.
	for range 30 {
		overlaps, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(() => {
			const boxes = [...document.querySelectorAll('.tile, .panel, .idle, header')].map(e => e.getBoundingClientRect());
			let n = 0;
			const lane = document.getElementById('bursts').getBoundingClientRect();
			for (const b of document.querySelectorAll('#bursts .burst')) {
				// What shows of a burst: the lane clips it (overflow: hidden).
				const o = b.getBoundingClientRect();
				const r = { left: Math.max(o.left, lane.left), right: Math.min(o.right, lane.right),
					top: Math.max(o.top, lane.top), bottom: Math.min(o.bottom, lane.bottom) };
				if (r.right <= r.left || r.bottom <= r.top) continue;
				for (const c of boxes) {
					if (r.right > c.left && r.left < c.right && r.bottom > c.top && r.top < c.bottom) n++;
				}
			}
			return n;
		})()`))
		require.NoError(t, err)
		require.Zero(t, overlaps, "bursts over the figures")
		time.Sleep(100 * time.Millisecond)
	}
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err)
	require.Equal(t, 1280, img.Bounds().Dx())

	dirs := []string{t.TempDir()}
	if d := os.Getenv("SCREENSHOT_DIR"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, "dashboard.png")
		require.NoError(t, os.WriteFile(p, shot, 0o644))
		t.Logf("screenshot: %s", p)
	}
}

// yLabels reads the chart's y-axis labels as integers; any label that is not
// a whole number fails the test.
func yLabels(t *testing.T, ctx context.Context) []int {
	t.Helper()
	texts, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#chart .y-label')].map(e => e.textContent)`))
	require.NoError(t, err)
	var out []int
	for _, s := range texts {
		n, err := strconv.Atoi(strings.ReplaceAll(s, ",", ""))
		require.NoError(t, err, "y-axis label %q is not a whole number", s)
		out = append(out, n)
	}
	require.True(t, slices.IsSorted(out), "y-axis labels in order: %v", out)
	return out
}

// colourfulShare is the share of a PNG's visible pixels that are clearly
// coloured (channels differ by more than 60 of 255).
func colourfulShare(t *testing.T, shot []byte) float64 {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err)
	var coloured, all int
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			hi, lo := max(r, g, bl)>>8, min(r, g, bl)>>8
			all++
			if hi-lo > 60 {
				coloured++
			}
		}
	}
	require.Positive(t, all)
	return float64(coloured) / float64(all)
}
