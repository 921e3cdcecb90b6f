package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/api"
	"github.com/emostream/emostream/examples/emostream/internal/httpx"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream/embedded"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// startAPI runs a server for cfg until the test ends and returns its base URL.
func startAPI(t *testing.T, cfg api.Config) (*api.Server, string) {
	t.Helper()
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := api.New(cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/api", s.Handler())
	mux.Handle("/healthz", httpx.Health(s.Ready))
	mux.Handle("/metrics", httpx.Metrics(s.Registry()))
	srv := httptest.NewServer(mux)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		require.NoError(t, <-done)
	})
	return s, srv.URL
}

func waitReady(t *testing.T, s *api.Server) {
	t.Helper()
	require.Eventually(t, func() bool { return s.Ready() == nil }, 30*time.Second, 20*time.Millisecond, "API never became ready")
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func post(t *testing.T, url, contentType, body string) response {
	t.Helper()
	return do(t, http.MethodPost, url, contentType, strings.NewReader(body))
}

func do(t *testing.T, method, url, contentType string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if method != http.MethodHead {
		require.NoError(t, json.Unmarshal(raw, &r.body), "body %q is not JSON", raw)
	}
	return r
}

// deadBroker returns an address where nothing listens.
func deadBroker(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

const okEmoji = `{"user_id":"u1","emoji_type":"🔥"}`

// TestBadRequests covers every error row of the contract. Validation runs
// before Kafka is involved, so the server needs no broker; the 503 row is
// exactly what a server without a reachable broker answers.
func TestBadRequests(t *testing.T) {
	s, base := startAPI(t, api.Config{Brokers: []string{deadBroker(t)}, AckTimeout: 300 * time.Millisecond})
	url := base + "/api"
	future := time.Now().Add(10 * time.Minute).UnixMilli()
	batch := func(items ...string) string { return "[" + strings.Join(items, ",") + "]" }
	tooMany := batch(strings.Split(strings.Repeat(okEmoji+"\n", 1001), "\n")[:1001]...)

	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		status      int
		errContains string
		index       int // -1: no index expected
	}{
		{name: "invalid json", body: `{"user_id":`, status: 400, errContains: "invalid JSON", index: -1},
		{name: "trailing data", body: okEmoji + ` {}`, status: 400, errContains: "invalid JSON", index: -1},
		{name: "empty body", body: ``, status: 400, errContains: "invalid JSON", index: -1},
		{name: "not an object", body: `"🔥"`, status: 400, errContains: "emoji object", index: -1},
		{name: "null body", body: `null`, status: 400, errContains: "emoji object", index: -1},
		{name: "user_id missing", body: `{"emoji_type":"🔥"}`, status: 400, errContains: "user_id", index: -1},
		{name: "user_id empty", body: `{"user_id":"","emoji_type":"🔥"}`, status: 400, errContains: "user_id", index: -1},
		{name: "user_id too long", body: `{"user_id":"` + strings.Repeat("u", 129) + `","emoji_type":"🔥"}`, status: 400, errContains: "user_id", index: -1},
		{name: "user_id invalid utf8", body: "{\"user_id\":\"\xc3\x28\",\"emoji_type\":\"🔥\"}", status: 400, errContains: "user_id", index: -1},
		{name: "user_id lone surrogate", body: `{"user_id":"\udead","emoji_type":"🔥"}`, status: 400, errContains: "user_id", index: -1},
		{name: "user_id not a string", body: `{"user_id":42,"emoji_type":"🔥"}`, status: 400, errContains: "user_id", index: -1},
		{name: "emoji_type missing", body: `{"user_id":"u"}`, status: 400, errContains: "emoji_type", index: -1},
		{name: "emoji_type two emojis", body: `{"user_id":"u","emoji_type":"🔥👍"}`, status: 400, errContains: "emoji_type", index: -1},
		{name: "emoji_type text", body: `{"user_id":"u","emoji_type":"fire"}`, status: 400, errContains: "emoji_type", index: -1},
		{name: "emoji_type lone regional indicator", body: `{"user_id":"u","emoji_type":"🇮"}`, status: 400, errContains: "emoji_type", index: -1},
		{name: "emoji_type not a string", body: `{"user_id":"u","emoji_type":1}`, status: 400, errContains: "emoji_type", index: -1},
		{name: "timestamp not rfc3339", body: `{"user_id":"u","emoji_type":"🔥","timestamp":"12:00"}`, status: 400, errContains: "timestamp", index: -1},
		{name: "timestamp fractional", body: `{"user_id":"u","emoji_type":"🔥","timestamp":1.5}`, status: 400, errContains: "timestamp", index: -1},
		{name: "timestamp negative", body: `{"user_id":"u","emoji_type":"🔥","timestamp":-1}`, status: 400, errContains: "timestamp", index: -1},
		{name: "timestamp wrong type", body: `{"user_id":"u","emoji_type":"🔥","timestamp":{}}`, status: 400, errContains: "timestamp", index: -1},
		{name: "timestamp far future", body: fmt.Sprintf(`{"user_id":"u","emoji_type":"🔥","timestamp":%d}`, future), status: 400, errContains: "future", index: -1},
		{name: "batch bad object", body: batch(okEmoji, okEmoji, `{"user_id":"u","emoji_type":"x"}`, `{}`), status: 400, errContains: "emoji_type", index: 2},
		{name: "batch non-object", body: batch(okEmoji, `7`), status: 400, errContains: "emoji object", index: 1},
		{name: "batch too large", body: tooMany, status: 400, errContains: "at most 1000", index: 1000},
		{name: "batch invalid json", body: `[` + okEmoji + `,]`, status: 400, errContains: "invalid JSON", index: -1},
		{name: "batch of 400k numbers", body: "[" + strings.Repeat("1,", 400000) + "1]", status: 400, errContains: "at most 1000", index: 1000},
		{name: "batch of 1001 empty objects", body: "[" + strings.Repeat("{},", 1000) + "{}]", status: 400, errContains: "at most 1000", index: 1000},
		{name: "deeply nested arrays", body: strings.Repeat("[", 100000) + strings.Repeat("]", 100000), status: 400, errContains: "invalid JSON", index: -1},
		{name: "batch invalid utf8 user", body: batch(okEmoji, "{\"user_id\":\"\xff\xfe\",\"emoji_type\":\"🔥\"}"), status: 400, errContains: "user_id", index: 1},
		{name: "emoji_type invalid utf8", body: "{\"user_id\":\"u\",\"emoji_type\":\"\xf0\x9f\x94\"}", status: 400, errContains: "emoji_type", index: -1},
		{name: "invalid utf8 outside strings", body: "{\"user_id\":\"u\",\"emoji_type\":\"🔥\"}\xff", status: 400, errContains: "invalid JSON", index: -1},
		{name: "NUL bytes", body: "\x00\x00\x00", status: 400, errContains: "invalid JSON", index: -1},
		{name: "GET", method: http.MethodGet, status: 405, errContains: "POST", index: -1},
		{name: "PUT", method: http.MethodPut, body: okEmoji, status: 405, errContains: "POST", index: -1},
		{name: "DELETE", method: http.MethodDelete, status: 405, errContains: "POST", index: -1},
		{name: "body over 1 MiB", body: `[` + strings.Repeat(" ", api.MaxBodyBytes) + `]`, status: 413, errContains: "1 MiB", index: -1},
		{name: "no content type", contentType: "-", body: okEmoji, status: 415, errContains: "application/json", index: -1},
		{name: "text/plain", contentType: "text/plain", body: okEmoji, status: 415, errContains: "application/json", index: -1},
		{name: "form", contentType: "application/x-www-form-urlencoded", body: "a=b", status: 415, errContains: "application/json", index: -1},
		{name: "latin1 charset", contentType: "application/json; charset=iso-8859-1", body: okEmoji, status: 415, errContains: "utf-8", index: -1},
		{name: "kafka unavailable", body: okEmoji, status: 503, errContains: "kafka unavailable", index: -1},
		{name: "kafka unavailable batch", contentType: "application/json; charset=UTF-8", body: batch(okEmoji, okEmoji), status: 503, errContains: "kafka unavailable", index: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			ct := tc.contentType
			switch ct {
			case "":
				ct = "application/json"
			case "-":
				ct = ""
			}
			start := time.Now()
			r := do(t, method, url, ct, strings.NewReader(tc.body))
			require.Equal(t, tc.status, r.status, "body: %s", r.raw)
			require.Equal(t, "application/json", r.header.Get("Content-Type"))
			msg, _ := r.body["error"].(string)
			require.Contains(t, msg, tc.errContains)
			if tc.index >= 0 {
				require.Equal(t, float64(tc.index), r.body["index"], "body: %s", r.raw)
			} else {
				require.NotContains(t, r.body, "index")
			}
			if tc.status == 405 {
				require.Equal(t, "POST", r.header.Get("Allow"))
			}
			if tc.status == 503 {
				require.Less(t, time.Since(start), 5*time.Second, "503 must come after a bounded wait")
			}
		})
	}

	t.Run("chunked body over 1 MiB", func(t *testing.T) {
		// No Content-Length: the limit must hold while reading.
		pr, pw := io.Pipe()
		go func() {
			_, _ = pw.Write([]byte(`[`))
			chunk := []byte(strings.Repeat(" ", 64<<10))
			for range 20 {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
			_ = pw.Close()
		}()
		r := do(t, http.MethodPost, url, "application/json", pr)
		require.Equal(t, 413, r.status, r.raw)
	})

	t.Run("healthz unavailable", func(t *testing.T) {
		require.Error(t, s.Ready())
		r := do(t, http.MethodGet, base+"/healthz", "", nil)
		require.Equal(t, 503, r.status)
	})
}

// TestConcurrencyLimit fills the only request slot with a request whose body
// never ends: the next request is answered 503 at once, in JSON, instead of
// queueing; once the slot is free requests are handled again.
func TestConcurrencyLimit(t *testing.T) {
	s, base := startAPI(t, api.Config{Brokers: []string{deadBroker(t)}, AckTimeout: 200 * time.Millisecond, MaxConcurrent: 1})
	url := base + "/api"
	// The slot holder: a raw connection that sends the headers and half of
	// the body, so its handler holds the only slot while it reads. The probe
	// goes out only once the holder's handler has the slot: a probe sent
	// earlier could take the slot first, and the refused holder would then
	// never see its answer (the server reads the rest of an unread body
	// before it answers).
	half := len(okEmoji) / 2
	holder, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = holder.Close() })
	_, err = fmt.Fprintf(holder, "POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(okEmoji), okEmoji[:half])
	require.NoError(t, err)
	require.Eventually(t, func() bool { return s.BusySlots() == 1 }, 10*time.Second, 5*time.Millisecond, "the slot holder never held the slot")

	start := time.Now()
	r := post(t, url, "application/json", okEmoji)
	took := time.Since(start)
	require.Equal(t, 503, r.status, r.raw)
	require.Equal(t, "too many concurrent requests", r.body["error"])
	// A queued request would wait as long as the slot holder (for ever
	// here); the refusal comes at once. 5 s leaves room for a loaded machine.
	require.Less(t, took, 5*time.Second, "answered at once, not queued")
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, "1", r.header.Get("Retry-After"))

	// The rest of the body: the holder gets its own answer and frees the slot.
	_, err = io.WriteString(holder, okEmoji[half:])
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(holder), nil)
	require.NoError(t, err)
	raw, _ := io.ReadAll(res.Body)
	require.Equal(t, 503, res.StatusCode, string(raw))
	require.Contains(t, string(raw), "kafka unavailable", "the slot holder got its own answer")
	r = post(t, url, "application/json", okEmoji)
	require.Equal(t, 503, r.status)
	require.Contains(t, r.body["error"], "kafka unavailable", "the slot is free again")

	_, err = api.New(api.Config{Brokers: []string{"x:1"}, MaxConcurrent: -1})
	require.ErrorContains(t, err, "MaxConcurrent must be positive")
}

// TestKafkaGoesAway checks the 503 of a server that was connected when the
// broker disappeared, and that memory stays bounded meanwhile: the requests
// that time out do not leave records waiting forever.
func TestKafkaGoesAway(t *testing.T) {
	b, err := embedded.Start()
	require.NoError(t, err)
	defer b.Close()
	topic := kafkatest.UniqueName(t, "in")
	kafkatest.CreateTopic(t, b.Addrs(), topic, 2)
	s, base := startAPI(t, api.Config{Brokers: b.Addrs(), Topic: topic, AckTimeout: time.Second, MaxInFlight: 1000})
	waitReady(t, s)
	require.Equal(t, 202, post(t, base+"/api", "application/json", okEmoji).status)

	require.NoError(t, b.Close())
	for range 3 {
		start := time.Now()
		r := post(t, base+"/api", "application/json", okEmoji)
		require.Equal(t, 503, r.status, r.raw)
		require.Contains(t, r.body["error"], "kafka unavailable")
		require.Less(t, time.Since(start), 4*time.Second)
	}
	require.Eventually(t, func() bool { return s.Ready() != nil }, 15*time.Second, 50*time.Millisecond)
}

func TestRoundTrip(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			topic := kafkatest.UniqueName(t, "topic1")
			const partitions = 4
			kafkatest.CreateTopic(t, brokers, topic, partitions)
			s, base := startAPI(t, api.Config{Brokers: brokers, Topic: topic})
			waitReady(t, s)
			url := base + "/api"

			now := time.Now().Truncate(time.Millisecond)
			r := post(t, url, "application/json", fmt.Sprintf(`{"user_id":"alice","emoji_type":"👍🏽","timestamp":%q}`, now.Format(time.RFC3339Nano)))
			require.Equal(t, 202, r.status, r.raw)
			require.Equal(t, float64(1), r.body["accepted"])

			emojis := []string{"🔥", "❤️", "🇮🇳", "👩‍👩‍👧", "🔥"}
			var items []string
			for i, e := range emojis {
				items = append(items, fmt.Sprintf(`{"user_id":"bob-%d","emoji_type":%q,"timestamp":%d}`, i, e, now.UnixMilli()-int64(i)))
			}
			r = post(t, url, "application/json; charset=utf-8", "["+strings.Join(items, ",")+"]")
			require.Equal(t, 202, r.status, r.raw)
			require.Equal(t, float64(len(emojis)), r.body["accepted"])

			before := time.Now().UnixMilli()
			r = post(t, url, "application/json", `{"user_id":"carol","emoji_type":"🫠"}`)
			require.Equal(t, 202, r.status, r.raw)
			after := time.Now().UnixMilli()

			want := map[string]wire.Event{"alice": {UserID: "alice", EmojiType: "👍🏽", Timestamp: now.UnixMilli()}}
			for i, e := range emojis {
				id := fmt.Sprintf("bob-%d", i)
				want[id] = wire.Event{UserID: id, EmojiType: e, Timestamp: now.UnixMilli() - int64(i)}
			}
			msgs := kafkatest.ConsumeN(t, brokers, topic, len(want)+1, 30*time.Second)
			part := sarama.NewMurmur2Partitioner(topic)
			for _, m := range msgs {
				var ev wire.Event
				require.NoError(t, json.Unmarshal([]byte(m.Value), &ev))
				decoded, err := wire.DecodeEvent([]byte(m.Value))
				require.NoError(t, err)
				require.Equal(t, ev, decoded)
				require.Equal(t, ev.EmojiType, m.Key, "key is the emoji")
				require.Equal(t, ev.Timestamp, m.Timestamp.UnixMilli(), "record timestamp is the event time")
				p, err := part.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(m.Key)}, partitions)
				require.NoError(t, err)
				require.Equal(t, p, m.Partition, "murmur2 partition of %q", m.Key)
				var fields map[string]any
				require.NoError(t, json.Unmarshal([]byte(m.Value), &fields))
				require.Len(t, fields, 3, "value %s", m.Value)
				if ev.UserID == "carol" {
					require.GreaterOrEqual(t, ev.Timestamp, before)
					require.LessOrEqual(t, ev.Timestamp, after)
					continue
				}
				require.Equal(t, want[ev.UserID], ev)
				delete(want, ev.UserID)
			}
			require.Empty(t, want)

			health := do(t, http.MethodGet, base+"/healthz", "", nil)
			require.Equal(t, 200, health.status)
			res, err := http.Get(base + "/metrics")
			require.NoError(t, err)
			metrics, _ := io.ReadAll(res.Body)
			res.Body.Close()
			require.Contains(t, string(metrics), "emostream_api_emojis_accepted_total 7")
		})
	}
}

// TestShutdownFlushes posts from many clients while the server shuts down:
// every request answered 202 must be in Kafka, and nothing else may be.
func TestShutdownFlushes(t *testing.T) {
	brokers := kafkatest.EmbeddedBrokers(t)
	topic := kafkatest.UniqueName(t, "topic1")
	kafkatest.CreateTopic(t, brokers, topic, 3)
	s, err := api.New(api.Config{Brokers: brokers, Topic: topic, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitReady(t, s)

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
		statuses = map[int]int{}
	)
	stop := make(chan struct{})
	for c := range 8 {
		wg.Go(func() {
			body := fmt.Sprintf(`[{"user_id":"c%d","emoji_type":"🔥"},{"user_id":"c%d","emoji_type":"🎉"}]`, c, c)
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := http.Post(srv.URL, "application/json", strings.NewReader(body))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				mu.Lock()
				statuses[res.StatusCode]++
				if res.StatusCode == 202 {
					accepted += 2
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	require.Greater(t, accepted, 0)
	for code := range statuses {
		require.Contains(t, []int{202, 503}, code)
	}
	// A 503 here only ever means "shutting down" before anything was sent,
	// so the topic must hold exactly the accepted records.
	client, err := sarama.NewClient(brokers, kafkatest.SaramaConfig())
	require.NoError(t, err)
	defer client.Close()
	parts, err := client.Partitions(topic)
	require.NoError(t, err)
	var total int64
	for _, p := range parts {
		n, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		require.NoError(t, err)
		total += n
	}
	require.Equal(t, int64(accepted), total, "statuses %v", statuses)
}
