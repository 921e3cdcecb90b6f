package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/wire"
)

func TestGeneratorOutcomes(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]wire.Event{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var reqs []wire.Request
		require.NoError(t, json.Unmarshal(body, &reqs))
		first := reqs[0].UserID
		switch {
		case strings.HasSuffix(first, "-0"), strings.HasSuffix(first, "-30"):
			mu.Lock()
			for _, q := range reqs {
				seen[q.UserID] = wire.Event{UserID: q.UserID, EmojiType: q.EmojiType, Timestamp: *q.Timestamp}
			}
			mu.Unlock()
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, `{"accepted":%d}`, len(reqs))
		case strings.HasSuffix(first, "-10"):
			w.WriteHeader(http.StatusServiceUnavailable)
		case strings.HasSuffix(first, "-20"):
			// The connection dies mid-request: outcome unknown.
			conn, _, err := w.(http.Hijacker).Hijack()
			require.NoError(t, err)
			conn.Close()
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"nope"}`)
		}
	}))
	defer srv.Close()

	g := &Generator{URL: srv.URL + "/api", Prefix: "sX-", Total: 45, Batch: 10, Rate: 1000, Workers: 3,
		Emojis: []string{"🔥", "👍🏽"}}
	before := time.Now().UnixMilli()
	s := g.Run(context.Background())
	st := g.Status()
	require.Len(t, st, 45)
	for i, x := range st {
		want := StatusFailed
		switch {
		case i < 10 || (i >= 30 && i < 40):
			want = StatusAcked
		}
		require.Equal(t, want, x, "seq %d", i)
	}
	require.Equal(t, int64(5), s.Requests)
	require.Equal(t, int64(20), s.Acked)
	require.Equal(t, int64(25), s.Failed)
	require.Equal(t, int64(1), s.HTTP503)
	require.Equal(t, int64(1), s.HTTPOther) // the last, short batch: 400
	require.Equal(t, int64(1), s.NetErrors)
	require.GreaterOrEqual(t, s.MinTS, before)
	require.GreaterOrEqual(t, s.MaxTS, s.MinTS)
	require.Len(t, seen, 20)
	require.Contains(t, []string{"🔥", "👍🏽"}, seen["sX-0"].EmojiType)
	require.Equal(t, []string{`POST of sX-40..44: HTTP 400 "{\"error\":\"nope\"}"`}, g.Problems())
}

func TestGeneratorRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	g := &Generator{URL: "http://" + addr + "/api", Prefix: "sX-", Total: 30, Batch: 10, Rate: 1000, Workers: 2,
		Emojis: []string{"🔥"}}
	s := g.Run(context.Background())
	require.Equal(t, int64(30), s.Unsent)
	for _, x := range g.Status() {
		require.Equal(t, StatusUnsent, x)
	}
}

func TestGeneratorPaces(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var reqs []json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&reqs)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"accepted":%d}`, len(reqs))
	}))
	defer srv.Close()
	g := &Generator{URL: srv.URL, Prefix: "p", Total: 100, Batch: 10, Rate: 200, Workers: 4, Emojis: []string{"🔥"}}
	s := g.Run(context.Background())
	require.Equal(t, int64(100), s.Acked)
	// 10 batches at 20 a second: the last one is due after 450 ms.
	require.GreaterOrEqual(t, s.Elapsed, 440*time.Millisecond)
	require.Less(t, s.Elapsed, 5*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g = &Generator{URL: srv.URL, Prefix: "p", Total: 100, Batch: 10, Rate: 1, Workers: 1, Emojis: []string{"🔥"}}
	s = g.Run(ctx)
	require.Zero(t, s.Acked+s.Failed+s.Unsent)
	for _, x := range g.Status() {
		require.Equal(t, StatusPending, x)
	}
}

// Stop ends the run without failing the requests in flight: every emoji is
// acknowledged or never sent.
func TestGeneratorStop(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var reqs []json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&reqs)
		<-release // held until after Stop
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"accepted":%d}`, len(reqs))
	}))
	defer srv.Close()
	stop := make(chan struct{})
	g := &Generator{URL: srv.URL, Prefix: "p", Total: 1000, Batch: 10, Rate: 100, Workers: 2, Emojis: []string{"🔥"}, Stop: stop}
	go func() {
		time.Sleep(250 * time.Millisecond)
		close(stop)
		time.Sleep(100 * time.Millisecond)
		close(release)
	}()
	s := g.Run(context.Background())
	require.Zero(t, s.Failed+s.Unsent)
	require.Positive(t, s.Acked)
	require.Less(t, s.Acked, int64(1000))
	acked := 0
	for _, x := range g.Status() {
		require.Contains(t, []Status{StatusAcked, StatusPending}, x)
		if x == StatusAcked {
			acked++
		}
	}
	require.Equal(t, int(s.Acked), acked)
}
