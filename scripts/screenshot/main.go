// Command screenshot saves a picture of a running EmoStream dashboard with
// headless Chromium, once the page shows live results: the picture of the
// README, taken by scripts/screenshot.sh (make screenshot) from a real
// `emostream run --load-clients 20`.
//
//	go run ./scripts/screenshot -url http://127.0.0.1:8080/ -out docs/img/dashboard.png
//
// Chromium's own --screenshot takes its picture as soon as the page has
// loaded, before a live result has arrived on the event stream; this waits
// for -live of them and for bursts in the air.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/chromedp/chromedp"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/", "the dashboard's `URL`")
	out := flag.String("out", "docs/img/dashboard.png", "where to write the PNG")
	width := flag.Int("width", 1280, "viewport width")
	height := flag.Int("height", 720, "viewport height")
	live := flag.Int("live", 20, "live results the page must have shown first")
	timeout := flag.Duration("timeout", 60*time.Second, "how long to wait for them")
	flag.Parse()
	if err := run(*url, *out, *width, *height, *live, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "screenshot:", err)
		os.Exit(1)
	}
}

func run(url, out string, width, height, live int, timeout time.Duration) error {
	exe := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		return errors.New("no chromium on PATH (Debian: apt-get install chromium fonts-noto-color-emoji)")
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(width, height),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	defer cancelTimeout()

	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(int64(width), int64(height)),
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`#status[data-state="live"]`)),
	); err != nil {
		return fmt.Errorf("loading %s: %w", url, err)
	}
	for {
		ready, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
			`window.emostream.live >= %d && document.querySelectorAll('#bursts .burst').length >= 4`, live)))
		if err != nil {
			return fmt.Errorf("waiting for %d live results: %w", live, err)
		}
		if ready {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // the tiles render on a timer
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return err
	}
	return os.WriteFile(out, shot, 0o644)
}
