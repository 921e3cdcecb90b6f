package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emostream/emostream/examples/emostream/wire"
)

// Config configures a [Client]. Only Target is required.
type Config struct {
	// Target is the API's URL: its base ("http://host:8080") or the
	// endpoint itself ("http://host:8080/api").
	Target string
	// Clients is the number of concurrent clients, each with its own
	// keep-alive connection (default 10).
	Clients int
	// Rate is the target in emojis per second across all clients; 0 sends
	// as fast as the clients can.
	Rate float64
	// Duration is how long to send; requests under way when it ends are
	// answered (within Timeout) and counted. 0 runs until the context ends,
	// which interrupts the requests under way.
	Duration time.Duration
	// Batch is the number of emojis per request: 1 (the default) sends one
	// object, more send an array.
	Batch int
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// Emojis to draw from (default [DefaultEmojis]).
	Emojis []string
	// Progress receives a progress line every ProgressInterval and the
	// final summary; nil prints nothing.
	Progress io.Writer
	// ProgressInterval defaults to 1s.
	ProgressInterval time.Duration
	// HTTPClient replaces the client built from Clients and Timeout: the
	// requests then go through net/http (as they do to an https target)
	// instead of the package's lean HTTP/1.1 client.
	HTTPClient *http.Client
}

// Client generates load. Create it with [New] and call [Client.Run].
type Client struct {
	cfg      Config
	endpoint string
	http     *http.Client
	raw      *rawTarget // plain HTTP without Config.HTTPClient: the lean client of conn.go
	picker   *picker
	// emojiJSON holds each emoji of Config.Emojis as a JSON string, so
	// request bodies are appended without encoding/json.
	emojiJSON [][]byte

	mu       sync.Mutex
	total    *histogram
	interval *histogram
	sum      Summary
	tick     Summary // counters at the last progress line
}

// Summary is what a run did.
type Summary struct {
	// Elapsed is the run's duration.
	Elapsed time.Duration
	// Requests is the number of requests answered or failed; Emojis the
	// number of emojis they carried, Accepted the emojis answered 202.
	Requests, Emojis, Accepted int64
	// Errors is the number of requests not answered 202, transport
	// failures included.
	Errors int64
	// ByStatus counts answers by HTTP status; status 0 counts transport
	// failures (refused connections, timeouts).
	ByStatus map[int]int64
	// Behind is the number of request slots skipped because every client
	// was busy: the target rate was not reached.
	Behind int64
	// P50, P99 and Max are request latencies.
	P50, P99, Max time.Duration
}

// New checks cfg and prepares a client.
func New(cfg Config) (*Client, error) {
	if cfg.Clients == 0 {
		cfg.Clients = 10
	}
	if cfg.Batch == 0 {
		cfg.Batch = 1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = time.Second
	}
	if len(cfg.Emojis) == 0 {
		cfg.Emojis = DefaultEmojis()
	}
	var errs []error
	endpoint, err := endpointOf(cfg.Target)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.Clients < 1 {
		errs = append(errs, fmt.Errorf("clients must be at least 1, got %d", cfg.Clients))
	}
	if cfg.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate must not be negative, got %v", cfg.Rate))
	}
	if cfg.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration must not be negative, got %v", cfg.Duration))
	}
	if cfg.Batch < 1 || cfg.Batch > 1000 {
		errs = append(errs, fmt.Errorf("batch must be 1 to 1000, got %d", cfg.Batch))
	}
	for _, e := range cfg.Emojis {
		if !wire.ValidEmoji(e) {
			errs = append(errs, fmt.Errorf("%q is not an emoji the API accepts", e))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("load: invalid config: %w", err)
	}
	hc := cfg.HTTPClient
	var raw *rawTarget
	if hc == nil {
		raw = newRawTarget(endpoint, cfg.Timeout) // nil for https
		hc = &http.Client{
			Timeout: cfg.Timeout,
			Transport: &http.Transport{
				Proxy:               nil, // load belongs on the target, not on a proxy
				MaxIdleConns:        cfg.Clients,
				MaxIdleConnsPerHost: cfg.Clients,
				MaxConnsPerHost:     cfg.Clients,
				IdleConnTimeout:     90 * time.Second,
			},
		}
	}
	emojiJSON := make([][]byte, len(cfg.Emojis))
	for i, e := range cfg.Emojis {
		emojiJSON[i], _ = json.Marshal(e)
	}
	return &Client{
		cfg: cfg, endpoint: endpoint, http: hc, raw: raw, emojiJSON: emojiJSON,
		total: newHistogram(), interval: newHistogram(),
		sum: Summary{ByStatus: map[int]int64{}},
	}, nil
}

// endpointOf turns a base URL into the /api endpoint.
func endpointOf(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("target must be an http(s) URL, got %q", target)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/api"
	}
	return u.String(), nil
}

// Endpoint is the URL requests go to.
func (c *Client) Endpoint() string { return c.endpoint }

// Run sends load until Duration has passed or ctx ends, then prints the
// summary to Progress. It returns [ErrNothingAccepted] if requests were
// sent but none was accepted.
func (c *Client) Run(ctx context.Context) error {
	// stop ends the sending; requests under way when Duration is over still
	// get their answers (within Timeout), so what the server accepted is
	// what the summary counts. Cancelling ctx interrupts them.
	stop := ctx
	if c.cfg.Duration > 0 {
		var cancel context.CancelFunc
		stop, cancel = context.WithTimeout(ctx, c.cfg.Duration)
		defer cancel()
	}
	start := time.Now()
	c.picker = newPicker(c.cfg.Emojis, start)

	// slots carries the pacer's permissions to send; with no rate the
	// clients do not wait for one.
	var slots chan struct{}
	if c.cfg.Rate > 0 {
		slots = make(chan struct{}, c.cfg.Clients)
	}
	var wg sync.WaitGroup
	for i := range c.cfg.Clients {
		wg.Go(func() { c.worker(ctx, stop, i, slots) })
	}
	if slots != nil {
		wg.Go(func() { c.pace(stop, start, slots) })
	}
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		c.progress(stop, start)
	}()
	wg.Wait()
	<-progressDone

	c.mu.Lock()
	c.sum.Elapsed = time.Since(start)
	c.mu.Unlock()
	sum := c.Summary()
	if c.cfg.Progress != nil {
		fmt.Fprint(c.cfg.Progress, sum.String(c.endpoint, c.cfg))
	}
	if sum.Requests > 0 && sum.Accepted == 0 {
		return ErrNothingAccepted
	}
	return nil
}

// pace hands out request slots at Rate/Batch per second. A slot no client
// is free to take is skipped and counted, not queued (see the package doc).
func (c *Client) pace(ctx context.Context, start time.Time, slots chan<- struct{}) {
	perSecond := c.cfg.Rate / float64(c.cfg.Batch)
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	var issued int64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due := int64(now.Sub(start).Seconds() * perSecond)
			for ; issued < due; issued++ {
				select {
				case slots <- struct{}{}:
				default:
					c.mu.Lock()
					c.sum.Behind++
					c.mu.Unlock()
				}
			}
		}
	}
}

// worker sends requests until stop ends; ctx bounds each request.
func (c *Client) worker(ctx, stop context.Context, id int, slots <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(id)))
	user, _ := json.Marshal(fmt.Sprintf("load-%03d", id))
	var conn *rawConn
	if c.raw != nil {
		conn = c.raw.newConn(ctx)
		defer conn.close()
	}
	var body []byte
	for {
		if slots != nil {
			select {
			case <-stop.Done():
				return
			case <-slots:
			}
		}
		if stop.Err() != nil {
			return
		}
		body = c.send(ctx, rng, user, conn, body)
	}
}

// send posts one request of Batch emojis stamped with the current time,
// reusing buf for its body, and records the answer. It returns the buffer
// for the next request.
func (c *Client) send(ctx context.Context, rng *rand.Rand, user []byte, conn *rawConn, buf []byte) []byte {
	now := time.Now()
	body := c.appendBody(buf[:0], rng, user, now)
	var status int
	var err error
	if conn != nil {
		status, err = conn.post(body)
	} else {
		status, err = c.postHTTP(ctx, body)
	}
	if err != nil {
		if ctx.Err() != nil {
			return body // the run ended mid-request; not the server's fault
		}
		c.record(0, time.Since(now), 0)
		return body
	}
	c.record(status, time.Since(now), c.cfg.Batch)
	return body
}

// appendBody appends a request body to dst: one emoji object, or an array
// of Batch of them, all with the timestamp now in epoch milliseconds.
func (c *Client) appendBody(dst []byte, rng *rand.Rand, user []byte, now time.Time) []byte {
	ms := now.UnixMilli()
	if c.cfg.Batch > 1 {
		dst = append(dst, '[')
	}
	for i := range c.cfg.Batch {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"user_id":`...)
		dst = append(dst, user...)
		dst = append(dst, `,"emoji_type":`...)
		dst = append(dst, c.emojiJSON[c.picker.pickIndex(rng, now)]...)
		dst = append(dst, `,"timestamp":`...)
		dst = strconv.AppendInt(dst, ms, 10)
		dst = append(dst, '}')
	}
	if c.cfg.Batch > 1 {
		dst = append(dst, ']')
	}
	return dst
}

// postHTTP sends body with the net/http client (Config.HTTPClient, or an
// https target).
func (c *Client) postHTTP(ctx context.Context, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	// Reading the body to the end lets the connection be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	_ = res.Body.Close()
	return res.StatusCode, nil
}

func (c *Client) record(status int, d time.Duration, emojis int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sum.Requests++
	c.sum.Emojis += int64(c.cfg.Batch)
	c.sum.ByStatus[status]++
	if status == http.StatusAccepted {
		c.sum.Accepted += int64(emojis)
	} else {
		c.sum.Errors++
	}
	if status != 0 {
		c.total.record(d)
		c.interval.record(d)
	}
}

// Summary returns the counters so far (the final ones after Run).
func (c *Client) Summary() Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sum
	s.ByStatus = make(map[int]int64, len(c.sum.ByStatus))
	for k, v := range c.sum.ByStatus {
		s.ByStatus[k] = v
	}
	s.P50, s.P99, s.Max = c.total.quantile(0.50), c.total.quantile(0.99), c.total.max
	return s
}

// progress prints one line per interval. On a terminal the line redraws
// itself; elsewhere (logs, CI) each update is a line of its own.
func (c *Client) progress(ctx context.Context, start time.Time) {
	w := c.cfg.Progress
	if w == nil {
		<-ctx.Done()
		return
	}
	end := "\n"
	if isTerminal(w) {
		end = "\033[K\r"
	}
	t := time.NewTicker(c.cfg.ProgressInterval)
	defer t.Stop()
	last := start
	for {
		select {
		case <-ctx.Done():
			if end != "\n" {
				fmt.Fprint(w, "\033[K")
			}
			return
		case now := <-t.C:
			c.mu.Lock()
			secs := now.Sub(last).Seconds()
			rate := float64(c.sum.Accepted-c.tick.Accepted) / secs
			errs := c.sum.Errors
			p50, p99 := c.interval.quantile(0.5), c.interval.quantile(0.99)
			c.interval.reset()
			c.tick = c.sum
			total := c.sum.Accepted
			c.mu.Unlock()
			last = now
			fmt.Fprintf(w, "[%6.1fs] %s emojis accepted  %s/s  errors %d  p50 %s  p99 %s%s",
				now.Sub(start).Seconds(), thousands(total), thousands(int64(rate)), errs, short(p50), short(p99), end)
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// String renders the summary for people.
func (s Summary) String(endpoint string, cfg Config) string {
	var b strings.Builder
	secs := max(s.Elapsed.Seconds(), 1e-9)
	fmt.Fprintf(&b, "load summary: %s against %s, %d clients, batch %d\n", s.Elapsed.Round(time.Millisecond), endpoint, cfg.Clients, cfg.Batch)
	target := "unlimited"
	if cfg.Rate > 0 {
		target = fmt.Sprintf("%s/s", thousands(int64(cfg.Rate)))
	}
	fmt.Fprintf(&b, "  emojis    %s accepted of %s sent  (%s/s, target %s)\n", thousands(s.Accepted), thousands(s.Emojis), thousands(int64(float64(s.Accepted)/secs)), target)
	fmt.Fprintf(&b, "  requests  %s  (%.1f/s)\n", thousands(s.Requests), float64(s.Requests)/secs)
	codes := make([]int, 0, len(s.ByStatus))
	for code := range s.ByStatus {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	var parts []string
	for _, code := range codes {
		name := fmt.Sprint(code)
		if code == 0 {
			name = "transport"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, s.ByStatus[code]))
	}
	fmt.Fprintf(&b, "  errors    %d  [%s]\n", s.Errors, strings.Join(parts, ", "))
	if s.Behind > 0 {
		fmt.Fprintf(&b, "  behind    %d request slots skipped: all clients were busy\n", s.Behind)
	}
	fmt.Fprintf(&b, "  latency   p50 %s  p99 %s  max %s\n", short(s.P50), short(s.P99), short(s.Max))
	return b.String()
}

func short(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return d.Round(100 * time.Millisecond).String()
	}
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
