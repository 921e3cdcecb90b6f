package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/emostream/emostream/examples/emostream/internal/httpx"
	"github.com/emostream/emostream/examples/emostream/wire"
)

// drainGrace is how long Run waits, beyond AckTimeout, for requests in
// flight to finish before it closes the producer under them.
const drainGrace = 5 * time.Second

// Server is the ingest API. Create it with [New], serve [Server.Handler]
// and call [Server.Run] to connect to Kafka.
type Server struct {
	cfg    Config
	log    *slog.Logger
	met    *metrics
	budget *semaphore.Weighted
	slots  chan struct{}

	connected chan struct{} // closed once prod is set
	prod      atomic.Pointer[producer]
	ran       atomic.Bool

	probeMu  sync.Mutex
	probeErr error

	mu       sync.Mutex
	active   int
	draining bool
	idle     chan struct{} // closed when draining and active == 0
}

// New checks cfg and prepares a server; nothing connects until Run.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Registry == nil {
		cfg.Registry = httpx.NewRegistry()
	}
	met, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("api: registering metrics: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "api"),
		met:       met,
		budget:    semaphore.NewWeighted(int64(cfg.MaxInFlight)),
		slots:     make(chan struct{}, cfg.MaxConcurrent),
		connected: make(chan struct{}),
		idle:      make(chan struct{}),
		probeErr:  fmt.Errorf("%w: not connected yet", ErrKafkaUnavailable),
	}
	return s, nil
}

// Handler serves POST /api. Mount it at "/api" on your own mux, or let Run
// serve it on Config.HTTP.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveAPI) }

// Registry is where the server's metrics are registered: Config.Registry,
// or the registry New made when that was nil.
func (s *Server) Registry() *prometheus.Registry { return s.cfg.Registry }

// Ready returns nil when the server can accept emojis: it is connected to
// Kafka, the last probe of the input topic succeeded, and it is not
// shutting down.
func (s *Server) Ready() error {
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	if draining {
		return ErrShuttingDown
	}
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	return s.probeErr
}

// Run connects to Kafka, serves HTTP on Config.HTTP if set, and blocks until
// ctx is cancelled. It then answers new requests 503, lets requests in
// flight finish, flushes the producer and returns. A Server runs once.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("api: server already ran")
	}
	var httpDone chan error
	if s.cfg.HTTP != "" {
		ln, err := httpx.Listen(s.cfg.HTTP)
		if err != nil {
			return fmt.Errorf("api: %w", err)
		}
		mux := httpx.ComponentMux("/api", s.Handler(), s.Ready, s.cfg.Registry)
		httpDone = make(chan error, 1)
		s.log.Info("ingest API listening", "addr", ln.Addr().String())
		go func() { httpDone <- httpx.Serve(ctx, ln, mux, s.log) }()
	}

	p, err := s.connect(ctx)
	if err == nil {
		s.prod.Store(p)
		close(s.connected)
		s.log.Info("connected to Kafka", "brokers", s.cfg.Brokers, "topic", s.cfg.Topic)
		probeCtx, stopProbe := context.WithCancel(ctx)
		defer stopProbe()
		go s.probeLoop(probeCtx, p)
	}
	var httpErr error
	select {
	case <-ctx.Done():
	case httpErr = <-httpDone: // the listener failed; shut down as on cancel
		httpDone = nil
	}

	s.drain(s.cfg.AckTimeout + drainGrace)
	if httpDone != nil {
		httpErr = <-httpDone
	}
	var closeErr error
	if p != nil {
		if closeErr = p.close(); closeErr != nil {
			closeErr = fmt.Errorf("api: closing producer: %w", closeErr)
		}
	}
	return errors.Join(httpErr, closeErr)
}

// enter admits a request unless the server is draining.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.active++
	return true
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.draining && s.active == 0 {
		close(s.idle)
	}
}

// drain refuses new requests and waits up to d for the active ones.
func (s *Server) drain(d time.Duration) {
	s.mu.Lock()
	s.draining = true
	if s.active == 0 {
		close(s.idle)
	}
	s.mu.Unlock()
	select {
	case <-s.idle:
	case <-time.After(d):
		s.log.Warn("requests still in flight after shutdown grace; closing the producer anyway")
	}
}

// reply is the outcome of one request.
type reply struct {
	status int
	body   any
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rep := s.handle(w, r, start)
	if rep.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	httpx.WriteJSON(w, rep.status, rep.body)
	s.met.requests.WithLabelValues(strconv.Itoa(rep.status)).Inc()
	s.met.duration.Observe(time.Since(start).Seconds())
}

func fail(status int, msg string) reply { return reply{status, httpx.Error{Error: msg}} }

func failAt(index int, msg string) reply {
	return reply{http.StatusBadRequest, httpx.Error{Error: msg, Index: &index}}
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, now time.Time) reply {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return fail(http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use POST")
	}
	if !s.enter() {
		return fail(http.StatusServiceUnavailable, "server is shutting down")
	}
	defer s.leave()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return fail(http.StatusServiceUnavailable, "too many concurrent requests")
	}
	// The answer waits for Kafka; the deadline leaves room for that, the
	// server itself has no write timeout because of the event streams.
	_ = http.NewResponseController(w).SetWriteDeadline(now.Add(s.cfg.AckTimeout + 10*time.Second))

	if msg := checkContentType(r.Header.Get("Content-Type")); msg != "" {
		return fail(http.StatusUnsupportedMediaType, msg)
	}
	if r.ContentLength > MaxBodyBytes {
		return fail(http.StatusRequestEntityTooLarge, "body is larger than 1 MiB")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fail(http.StatusRequestEntityTooLarge, "body is larger than 1 MiB")
		}
		return fail(http.StatusBadRequest, "reading body: "+err.Error())
	}
	events, bad := parseBody(body, now)
	if bad != nil {
		return *bad
	}
	if len(events) == 0 {
		return reply{http.StatusAccepted, accepted{0}}
	}
	if err := s.publish(r.Context(), events); err != nil {
		s.log.Debug("request not acknowledged", "records", len(events), "err", err)
		return fail(http.StatusServiceUnavailable, err.Error())
	}
	s.met.accepted.Add(float64(len(events)))
	return reply{http.StatusAccepted, accepted{len(events)}}
}

// accepted is the 202 body.
type accepted struct {
	Accepted int `json:"accepted"`
}

// checkContentType accepts application/json, with an optional UTF-8
// charset: JSON is UTF-8 on the wire (RFC 8259), so another charset means the
// client sends something we would misread.
func checkContentType(ct string) string {
	if ct == "" {
		return "Content-Type must be application/json"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return fmt.Sprintf("Content-Type must be application/json, got %q", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return fmt.Sprintf("charset must be utf-8, got %q", cs)
	}
	return ""
}

// parseBody validates the whole body before anything is sent, so a bad
// object anywhere rejects the batch with nothing written.
func parseBody(body []byte, now time.Time) ([]wire.Event, *reply) {
	// Only JSON's own whitespace: bytes.TrimSpace would also strip \v, \f,
	// U+0085 and U+00A0 and so accept bodies that are not JSON.
	body = bytes.Trim(body, " \t\r\n")
	if !json.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v)
		r := fail(http.StatusBadRequest, "invalid JSON: "+strings.TrimPrefix(err.Error(), "json: "))
		return nil, &r
	}
	if len(body) > 0 && body[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(body, &items); err != nil {
			r := fail(http.StatusBadRequest, "invalid JSON: "+err.Error())
			return nil, &r
		}
		if len(items) > MaxBatch {
			r := failAt(MaxBatch, fmt.Sprintf("batch has %d objects; at most %d are allowed", len(items), MaxBatch))
			return nil, &r
		}
		events := make([]wire.Event, len(items))
		for i, item := range items {
			ev, err := wire.ParseRequest(item, now)
			if err != nil {
				r := failAt(i, describe(err))
				return nil, &r
			}
			events[i] = ev
		}
		return events, nil
	}
	ev, err := wire.ParseRequest(body, now)
	if err != nil {
		r := fail(http.StatusBadRequest, describe(err))
		return nil, &r
	}
	return []wire.Event{ev}, nil
}

func describe(err error) string {
	var fe *wire.FieldError
	switch {
	case errors.As(err, &fe):
		return fe.Error()
	case errors.Is(err, wire.ErrNotObject):
		return "body must be an emoji object or an array of emoji objects"
	default:
		return strings.TrimPrefix(err.Error(), "wire: ")
	}
}

// publish writes the events and waits until Kafka acknowledged all of them,
// or until AckTimeout.
func (s *Server) publish(reqCtx context.Context, events []wire.Event) error {
	ctx, cancel := context.WithTimeout(reqCtx, s.cfg.AckTimeout)
	defer cancel()
	unavailable := func(why string) error { return fmt.Errorf("%w: %s", ErrKafkaUnavailable, why) }

	select {
	case <-s.connected:
	case <-ctx.Done():
		return unavailable("not connected to Kafka")
	}
	p := s.prod.Load()

	msgs := make([]*sarama.ProducerMessage, len(events))
	b := newBatch(len(events))
	for i, ev := range events {
		value, err := ev.Marshal()
		if err != nil {
			return fmt.Errorf("api: encoding record: %w", err)
		}
		msgs[i] = &sarama.ProducerMessage{
			Topic:     s.cfg.Topic,
			Key:       sarama.StringEncoder(ev.EmojiType),
			Value:     sarama.ByteEncoder(value),
			Timestamp: ev.Time(),
			Metadata:  b,
		}
	}

	n := int64(len(msgs))
	if err := s.budget.Acquire(ctx, n); err != nil {
		return unavailable("too many records waiting for Kafka")
	}
	s.met.inflight.Add(float64(n))
	sent, err := p.send(ctx, b, msgs)
	if unsent := n - int64(sent); unsent > 0 {
		// These never reached the producer, so no report will settle them.
		s.budget.Release(unsent)
		s.met.inflight.Sub(float64(unsent))
		for range unsent {
			b.finish(ErrKafkaUnavailable)
		}
	}
	if errors.Is(err, ErrShuttingDown) {
		return err
	}

	select {
	case <-b.done:
		if err := b.result(); err != nil {
			return unavailable(err.Error())
		}
		return nil
	case <-ctx.Done():
		if reqCtx.Err() != nil {
			return reqCtx.Err() // the client left; nobody reads the answer
		}
		return unavailable(fmt.Sprintf("no acknowledgement within %v", s.cfg.AckTimeout))
	}
}
