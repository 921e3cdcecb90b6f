package dashboard_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/dashboard"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestBrowserAggregations loads the dashboard with the two shipped extra
// aggregations in headless Chromium and checks their panels: the headings,
// the newest window's rows in order (from the history at load, then live
// from the event stream).
func TestBrowserAggregations(t *testing.T) {
	exe := chromium(t)
	brokers := kafkatest.EmbeddedBrokers(t)
	results := kafkatest.UniqueName(t, "topic2")
	topTopic, usersTopic := results+"-top3", results+"-distinct-users"
	for _, tp := range []string{results, topTopic, usersTopic} {
		kafkatest.CreateTopic(t, brokers, tp, 2)
	}
	w0 := time.Now().UnixMilli()/2000*2000 - 4000
	row := func(name string, start int64, label string, v float64, rank int) wire.Row {
		return wire.Row{Aggregation: name, WindowStart: start, WindowEnd: start + 2000, Label: label, Value: v, Rank: rank}
	}
	// History: written before the page opens.
	kafkatest.ProduceStrings(t, brokers, topTopic, rowKV("w0",
		row("top3", w0, "🔥", 40, 1), row("top3", w0, "👍🏽", 25, 2), row("top3", w0, "😂", 3, 3)))
	kafkatest.ProduceStrings(t, brokers, usersTopic, append(rowKV("🔥", row("distinct-users", w0, "🔥", 12, 0)),
		rowKV("😂", row("distinct-users", w0, "😂", 2, 0), row("distinct-users", w0, "👍🏽", 9, 0))...))
	_, base := startDashboard(t, dashboard.Config{Brokers: brokers, Topic: results, Window: 2 * time.Second, Grace: 500 * time.Millisecond,
		Panels: []dashboard.Panel{
			{Name: "distinct-users", Title: "Distinct users per emoji", Topic: usersTopic},
			{Name: "top3", Title: "Top 3 emojis per window", Topic: topTopic},
		}})

	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(1280, 1200))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelTimeout()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 1200),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#status[data-state="live"]`)),
	))

	type shownRow struct {
		Label string `json:"label"`
		Value string `json:"value"`
	}
	type shownPanel struct {
		Name  string     `json:"name"`
		Title string     `json:"title"`
		When  string     `json:"when"`
		Rows  []shownRow `json:"rows"`
	}
	const probe = `[...document.querySelectorAll('#aggregations .aggregation')].map(p => ({
		name: p.dataset.aggregation,
		title: p.querySelector('h2').textContent,
		when: p.querySelector('.when').textContent,
		rows: [...p.querySelectorAll('.rows li')].map(li => ({
			label: li.querySelector('.label').textContent, value: li.querySelector('.value').textContent})),
	}))`
	wait := func(ok func([]shownPanel) bool) []shownPanel {
		t.Helper()
		var seen []shownPanel
		deadline := time.Now().Add(30 * time.Second)
		for {
			var err error
			seen, err = chromedp.Run(ctx, chromedp.Evaluate[[]shownPanel](probe))
			require.NoError(t, err)
			if ok(seen) {
				return seen
			}
			if time.Now().After(deadline) {
				t.Fatalf("panels not as expected: %+v", seen)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The history: both panels, in the configured order, newest window.
	seen := wait(func(ps []shownPanel) bool { return len(ps) == 2 && len(ps[0].Rows) == 3 && len(ps[1].Rows) == 3 })
	require.Equal(t, "Distinct users per emoji", seen[0].Title)
	require.Equal(t, []shownRow{{"🔥", "12"}, {"👍🏽", "9"}, {"😂", "2"}}, seen[0].Rows, "by value")
	require.Equal(t, "Top 3 emojis per window", seen[1].Title)
	require.Equal(t, []shownRow{{"1. 🔥", "40"}, {"2. 👍🏽", "25"}, {"3. 😂", "3"}}, seen[1].Rows, "by rank")
	require.Contains(t, seen[1].When, "window ")

	// Live: a newer window replaces the shown one.
	w1 := w0 + 2000
	kafkatest.ProduceStrings(t, brokers, topTopic, rowKV("w1", row("top3", w1, "❤️", 7, 1), row("top3", w1, "🔥", 6, 2)))
	seen = wait(func(ps []shownPanel) bool { return len(ps) == 2 && len(ps[1].Rows) == 2 })
	require.Equal(t, []shownRow{{"1. ❤️", "7"}, {"2. 🔥", "6"}}, seen[1].Rows)
	require.Len(t, seen[0].Rows, 3, "the other panel is unchanged")

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	dirs := []string{t.TempDir()}
	if d := os.Getenv("SCREENSHOT_DIR"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, "dashboard-aggregations.png")
		require.NoError(t, os.WriteFile(p, shot, 0o644))
		t.Logf("screenshot: %s", p)
	}
}
