package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/emostream/emostream/examples/emostream/wire"
)

// arrival is one window result as the dashboard pushed it.
type arrival struct {
	at   time.Time // when its data line was read
	res  wire.Result
	hash uint64 // of the data line, to find it at the -viewers crowd
}

// subscriber reads the dashboard's /events stream and keeps every window
// result with its receive time.
type subscriber struct {
	mu       sync.Mutex
	arrivals []arrival
	bad      int // data lines that were not a result
	err      error
	watch    string        // emoji whose first result closes seen
	seen     chan struct{} // closed on the first result for watch
	seenOnce sync.Once
	done     chan struct{}
}

// subscribe opens url (the /events endpoint) and returns once the stream's
// headers arrived, so every result from then on is recorded. watch is an
// emoji whose first result closes [subscriber.seen].
func subscribe(ctx context.Context, url, watch string) (*subscriber, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	// No client timeout: the stream lasts the whole run; ctx ends it.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		_ = res.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %s", url, res.Status, bytes.TrimSpace(body))
	}
	s := &subscriber{watch: watch, seen: make(chan struct{}), done: make(chan struct{})}
	go s.read(res.Body)
	return s, nil
}

// read parses the event stream: "event: window" followed by one "data:"
// line holding the topic2 JSON, then a blank line. Comments (": ping")
// and other fields are skipped.
func (s *subscriber) read(body io.ReadCloser) {
	defer close(s.done)
	defer body.Close()
	r := bufio.NewReaderSize(body, 64<<10)
	event := ""
	for {
		line, err := r.ReadBytes('\n')
		now := time.Now()
		if err != nil {
			s.mu.Lock()
			if s.err == nil && err != io.EOF {
				s.err = err
			}
			s.mu.Unlock()
			return
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			event = ""
		case bytes.HasPrefix(line, []byte("event:")):
			event = string(bytes.TrimSpace(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			if event != "" && event != "window" {
				continue
			}
			var res wire.Result
			data := bytes.TrimSpace(line[len("data:"):])
			if err := json.Unmarshal(data, &res); err != nil || res.EmojiType == "" {
				s.mu.Lock()
				s.bad++
				s.mu.Unlock()
				continue
			}
			s.mu.Lock()
			s.arrivals = append(s.arrivals, arrival{at: now, res: res, hash: hashLine(data)})
			s.mu.Unlock()
			if res.EmojiType == s.watch {
				s.seenOnce.Do(func() { close(s.seen) })
			}
		}
	}
}

// snapshot returns the arrivals so far, how many data lines were not
// results, and the stream's read error, if it broke.
func (s *subscriber) snapshot() ([]arrival, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]arrival(nil), s.arrivals...), s.bad, s.err
}
