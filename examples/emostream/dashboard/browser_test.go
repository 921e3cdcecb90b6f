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
// as bursts. It saves a screenshot in the test's temp dir and, when
// SCREENSHOT_DIR is set, there too.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	brokers := kafkatest.EmbeddedBrokers(t)
	topic := kafkatest.UniqueName(t, "topic2")
	kafkatest.CreateTopic(t, brokers, topic, 2)
	_, base := startDashboard(t, dashboard.Config{Brokers: brokers, Topic: topic, Window: 2 * time.Second, Grace: 500 * time.Millisecond})

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
		chromedp.WaitVisible(chromedp.CSS(`#status[data-state="live"]`)),
	), "the page connects its event stream")

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
		if seen.Results == len(results) && len(seen.Lines) == len(emojis) && seen.Flying > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("page did not show the results: %+v", seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.ElementsMatch(t, emojis, seen.Lines, "one chart line per emoji")
	require.Equal(t, 60, seen.Points, "a point per window of the last 60")
	require.Positive(t, seen.Bursts)
	require.Equal(t, emojis[0], seen.Top[0], "top emoji of the last minute")
	require.NotEqual(t, "–", seen.Rate, "ingest rate shown")
	require.True(t, strings.HasSuffix(seen.Latency, " ms"), "latency shown: %q", seen.Latency)

	// Let the bursts rise into view before the picture.
	time.Sleep(3 * time.Second)
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
