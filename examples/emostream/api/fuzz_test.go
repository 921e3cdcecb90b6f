package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emostream/emostream/examples/emostream/internal/httpx"
	"github.com/emostream/emostream/examples/emostream/wire"
)

// The fuzz targets of this file check the POST /api path from body bytes to
// the records handed to Kafka: parseBody (the decoding and validation of a
// body) and the whole handler, served through httptest with a fake producer
// in place of sarama's. The seed corpus is under testdata/fuzz/<FuzzName>/;
// run one with
//
//	go test -run '^$' -fuzz '^FuzzParseBody$' -fuzztime 5m -parallel=1 ./examples/emostream/api/

// fuzzNow is the server clock of FuzzParseBody, fixed so a failing input
// replays exactly.
var fuzzNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// checkEvent fails unless ev satisfies the contract's rules for an accepted
// emoji received at now.
func checkEvent(t *testing.T, ev wire.Event, now time.Time) {
	t.Helper()
	if n := len(ev.UserID); n < 1 || n > wire.MaxUserIDBytes || !utf8.ValidString(ev.UserID) {
		t.Fatalf("accepted user_id %q (%d bytes)", ev.UserID, n)
	}
	if !wire.ValidEmoji(ev.EmojiType) {
		t.Fatalf("accepted emoji_type %q", ev.EmojiType)
	}
	if ev.Timestamp < 0 || ev.Timestamp > now.Add(wire.MaxFutureSkew).UnixMilli() {
		t.Fatalf("accepted timestamp %d, received at %d", ev.Timestamp, now.UnixMilli())
	}
}

// bodyShape classifies a request body the way the contract does.
type bodyShape struct {
	valid bool              // it is JSON (RFC 8259, whitespace included)
	array bool              // it is a JSON array
	items []json.RawMessage // its elements, when it is one
}

func shapeOf(t *testing.T, body []byte) bodyShape {
	if !json.Valid(body) {
		return bodyShape{}
	}
	if bytes.TrimLeft(body, " \t\r\n")[0] != '[' {
		return bodyShape{valid: true}
	}
	s := bodyShape{valid: true, array: true}
	if err := json.Unmarshal(body, &s.items); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkParse checks parseBody's answer for body, received at now, against
// the contract. A rejection is a 400 whose message says why; for an array it
// carries the index of the first object ParseRequest rejects (or MaxBatch
// when there are too many); for anything else none. An accepted body is JSON
// and yields, in order, exactly the events ParseRequest makes of its
// objects, each valid.
func checkParse(t *testing.T, body []byte, now time.Time, events []wire.Event, rep *reply) {
	t.Helper()
	s := shapeOf(t, body)
	if rep != nil {
		e, ok := rep.body.(httpx.Error)
		switch {
		case events != nil:
			t.Fatalf("parseBody(%q) returned both events and an error", body)
		case rep.status != http.StatusBadRequest || !ok || e.Error == "":
			t.Fatalf("parseBody(%q) rejected it with %d %+v; want 400 and a reason", body, rep.status, rep.body)
		case strings.HasPrefix(e.Error, "wire: ") || strings.HasPrefix(e.Error, "json: "):
			t.Fatalf("parseBody(%q): message %q leaks a package prefix", body, e.Error)
		case !s.valid:
			if e.Index != nil || !strings.HasPrefix(e.Error, "invalid JSON: ") {
				t.Fatalf("parseBody(%q) = %+v; want invalid JSON without index", body, e)
			}
		case !s.array:
			if e.Index != nil {
				t.Fatalf("parseBody(%q) = %+v; a single object has no index", body, e)
			}
			if _, err := wire.ParseRequest(body, now); err == nil {
				t.Fatalf("parseBody(%q) = %+v, but ParseRequest accepts it", body, e)
			}
		case e.Index == nil:
			t.Fatalf("parseBody(%q) = %+v; a batch error needs the index", body, e)
		case len(s.items) > MaxBatch:
			if *e.Index != MaxBatch {
				t.Fatalf("parseBody: %d objects, index %d; want %d", len(s.items), *e.Index, MaxBatch)
			}
		default:
			i := *e.Index
			if i < 0 || i >= len(s.items) {
				t.Fatalf("parseBody(%q): index %d of %d objects", body, i, len(s.items))
			}
			for j := range i {
				if _, err := wire.ParseRequest(s.items[j], now); err != nil {
					t.Fatalf("parseBody(%q): index %d, but object %d is bad too: %v", body, i, j, err)
				}
			}
			if _, err := wire.ParseRequest(s.items[i], now); err == nil {
				t.Fatalf("parseBody(%q): index %d, but that object is valid", body, i)
			}
		}
		return
	}

	if !s.valid {
		t.Fatalf("parseBody accepted %q, which is not JSON", body)
	}
	objects := [][]byte{body}
	if s.array {
		if len(s.items) > MaxBatch {
			t.Fatalf("parseBody accepted %d objects", len(s.items))
		}
		objects = objects[:0]
		for _, it := range s.items {
			objects = append(objects, it)
		}
	}
	if len(events) != len(objects) {
		t.Fatalf("parseBody(%q) made %d events of %d objects", body, len(events), len(objects))
	}
	for i, ev := range events {
		checkEvent(t, ev, now)
		if want, err := wire.ParseRequest(objects[i], now); err != nil || want != ev {
			t.Fatalf("parseBody(%q): event %d is %+v; ParseRequest says %+v, %v", body, i, ev, want, err)
		}
	}
	// A client re-sending the accepted events as a batch gets them back.
	reqs := make([]wire.Request, len(events))
	for i, ev := range events {
		reqs[i] = wire.Request{UserID: ev.UserID, EmojiType: ev.EmojiType, Timestamp: &ev.Timestamp}
	}
	again, err := json.Marshal(reqs)
	if err != nil {
		t.Fatal(err)
	}
	evs, rep2 := parseBody(again, now)
	if rep2 != nil || len(evs) != len(events) {
		t.Fatalf("re-sending %s: %+v", again, rep2)
	}
	for i := range evs {
		if evs[i] != events[i] {
			t.Fatalf("re-sending %s changed event %d: %+v -> %+v", again, i, events[i], evs[i])
		}
	}
}

// FuzzParseBody feeds arbitrary bodies to parseBody, the decoding step of
// POST /api. Properties: no panic, and the answer agrees with the contract
// as checkParse spells it out.
func FuzzParseBody(f *testing.F) {
	f.Add([]byte(`{"user_id":"u1","emoji_type":"🔥"}`))
	f.Add([]byte(`[{"user_id":"u1","emoji_type":"🔥"},{"user_id":"u2","emoji_type":"x"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[[{"user_id":"u1","emoji_type":"🔥"}]]`))
	f.Add([]byte("\u00a0[]"))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, rep := parseBody(body, fuzzNow)
		checkParse(t, body, fuzzNow, events, rep)
	})
}

// fakeKafka stands in for sarama's AsyncProducer: it acknowledges every
// record at once and keeps it for the test to inspect. Only Input is called
// by the server; the embedded interface is nil.
type fakeKafka struct {
	sarama.AsyncProducer
	in chan *sarama.ProducerMessage

	mu  sync.Mutex
	got []*sarama.ProducerMessage
}

func (k *fakeKafka) Input() chan<- *sarama.ProducerMessage { return k.in }

func (k *fakeKafka) take() []*sarama.ProducerMessage {
	k.mu.Lock()
	defer k.mu.Unlock()
	got := k.got
	k.got = nil
	return got
}

// newFakeServer returns a server connected to a fakeKafka, as Run would
// leave it after connecting.
func newFakeServer(tb testing.TB) (*Server, *fakeKafka) {
	s, err := New(Config{Brokers: []string{"fake:9092"}, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	k := &fakeKafka{in: make(chan *sarama.ProducerMessage)}
	s.prod.Store(&producer{lanes: []*lane{{async: k}}})
	close(s.connected)
	go func() {
		for m := range k.in {
			k.mu.Lock()
			k.got = append(k.got, m)
			k.mu.Unlock()
			s.reported(m, nil)
		}
	}()
	tb.Cleanup(func() { close(k.in) })
	return s, k
}

// FuzzHandler posts arbitrary bodies to the API handler. Properties: no
// panic; the status and JSON body are those parseBody's verdict calls for
// (400 with the same error and index, or 202 with the number accepted); on
// 202 Kafka received exactly those records, in order, each keyed by its
// emoji, with a topic1 value that DecodeEvent reads back as the event and
// the event time as the record timestamp.
func FuzzHandler(f *testing.F) {
	f.Add([]byte(`{"user_id":"u1","emoji_type":"🔥","timestamp":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`[{"user_id":"u1","emoji_type":"🇮🇳"},{"user_id":"u2","emoji_type":"👍🏽","timestamp":1767225600000}]`))
	f.Add([]byte(`[{"user_id":"u1","emoji_type":"🔥"},{"user_id":"","emoji_type":"🔥"}]`))
	f.Add([]byte(`{`))
	s, k := newFakeServer(f)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/api", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		before := time.Now()
		h.ServeHTTP(w, req)
		after := time.Now()
		got := k.take()

		// The verdict at both ends of the request: they differ only in the
		// receive time given to objects without a timestamp.
		evBefore, repBefore := parseBody(body, before)
		evAfter, _ := parseBody(body, after)
		checkParse(t, body, before, evBefore, repBefore)

		res := w.Result()
		raw, _ := io.ReadAll(res.Body)
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("response Content-Type %q", ct)
		}
		if repBefore != nil {
			var e httpx.Error
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("400 body %q: %v", raw, err)
			}
			want := repBefore.body.(httpx.Error)
			if res.StatusCode != repBefore.status || e.Error != want.Error || (e.Index == nil) != (want.Index == nil) ||
				(e.Index != nil && *e.Index != *want.Index) {
				t.Fatalf("POST %q: %d %s; want %d %+v", body, res.StatusCode, raw, repBefore.status, want)
			}
			if len(got) != 0 {
				t.Fatalf("POST %q was rejected but %d records reached Kafka", body, len(got))
			}
			return
		}
		var acc struct {
			Accepted *int `json:"accepted"`
		}
		if err := json.Unmarshal(raw, &acc); err != nil || res.StatusCode != http.StatusAccepted || acc.Accepted == nil || *acc.Accepted != len(evBefore) {
			t.Fatalf("POST %q: %d %s; want 202 and %d accepted", body, res.StatusCode, raw, len(evBefore))
		}
		if len(got) != len(evBefore) {
			t.Fatalf("POST %q: %d records reached Kafka; want %d", body, len(got), len(evBefore))
		}
		for i, m := range got {
			want := evBefore[i]
			key, _ := m.Key.Encode()
			value, _ := m.Value.Encode()
			ev, err := wire.DecodeEvent(value)
			lo, hi := min(want.Timestamp, evAfter[i].Timestamp), max(want.Timestamp, evAfter[i].Timestamp)
			switch {
			case m.Topic != DefaultTopic || string(key) != want.EmojiType:
				t.Fatalf("record %d of %q: topic %q key %q", i, body, m.Topic, key)
			case err != nil:
				t.Fatalf("record %d of %q: value %s does not decode: %v", i, body, value, err)
			case ev.UserID != want.UserID || ev.EmojiType != want.EmojiType || ev.Timestamp < lo || ev.Timestamp > hi:
				t.Fatalf("record %d of %q is %+v; want %+v", i, body, ev, want)
			case !m.Timestamp.Equal(ev.Time()):
				t.Fatalf("record %d of %q has timestamp %v; event time %v", i, body, m.Timestamp, ev.Time())
			}
		}
	})
}
