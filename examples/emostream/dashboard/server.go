package dashboard

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emostream/emostream/examples/emostream/internal/httpx"
)

// heartbeatInterval is how often idle event streams get a comment.
const heartbeatInterval = 15 * time.Second

// writeTimeout bounds one write to a viewer, so a stalled TCP connection
// frees its goroutine.
const writeTimeout = 10 * time.Second

//go:embed static
var staticFiles embed.FS

// errNotStarted is the readiness error before the consumer is running.
var errNotStarted = errors.New("dashboard: not reading results yet")

// Server is the dashboard. Create it with [New], serve [Server.Handler] and
// call [Server.Run] to start reading results.
type Server struct {
	cfg  Config
	log  *slog.Logger
	met  *metrics
	hist *history
	hub  *hub
	// panels are the extra aggregations' rows (panels.go).
	panels *panelSet
	page   []byte // index.html with the settings filled in
	ran    atomic.Bool

	// started is set once the first consumer session has read its
	// backfill; only consume's goroutine uses it.
	started bool

	mu       sync.Mutex
	readyErr error
	next     map[int32]int64 // per partition, the next offset to read
}

// New checks cfg and prepares the server; nothing connects until Run.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Registry == nil {
		cfg.Registry = httpx.NewRegistry()
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "dashboard"),
		hist:     newHistory(cfg.History),
		readyErr: errNotStarted,
		next:     map[int32]int64{},
	}
	var err error
	s.met, err = newMetrics(cfg.Registry, func() float64 { return float64(s.hub.viewers()) })
	if err != nil {
		return nil, fmt.Errorf("dashboard: registering metrics: %w", err)
	}
	s.hub = newHub(cfg.MaxViewers, cfg.ViewerBuffer, s.met.dropped.Inc)
	s.hub.fanout = func(d time.Duration) { s.met.fanout.Observe(d.Seconds()) }
	if s.panels, err = newPanelSet(cfg); err != nil {
		return nil, err
	}
	if s.page, err = renderPage(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

func renderPage(cfg Config) ([]byte, error) {
	tpl, err := template.ParseFS(staticFiles, "static/index.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: page template: %w", err)
	}
	var buf bytes.Buffer
	err = tpl.Execute(&buf, map[string]any{
		"WindowMS": cfg.Window.Milliseconds(),
		"GraceMS":  cfg.Grace.Milliseconds(),
		"Scale":    cfg.Scale,
		"Topic":    cfg.Topic,
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard: page template: %w", err)
	}
	return buf.Bytes(), nil
}

// Registry is where the server's metrics are registered.
func (s *Server) Registry() *prometheus.Registry { return s.cfg.Registry }

// Ready returns nil once the server reads the output topic.
func (s *Server) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readyErr
}

func (s *Server) setReady(err error) {
	s.mu.Lock()
	s.readyErr = err
	s.mu.Unlock()
}

// CloseStreams ends every open /events stream. Call it when the HTTP server
// that serves [Server.Handler] shuts down (http.Server.RegisterOnShutdown):
// event streams never finish by themselves, so a graceful shutdown would
// wait for them until its timeout. Browsers reconnect on their own.
func (s *Server) CloseStreams() { s.hub.close() }

// Handler serves the page (/), its assets (/static/), the event stream
// (/events), the history (/api/windows) and the extra aggregations' rows
// (/api/aggregations).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFiles, "static")
	files := http.FileServerFS(static)
	mux.Handle("/static/", getOnly(http.StripPrefix("/static/", files)))
	mux.Handle("/events", getOnly(http.HandlerFunc(s.serveEvents)))
	mux.Handle("/api/windows", getOnly(http.HandlerFunc(s.serveWindows)))
	mux.Handle("/api/aggregations", getOnly(http.HandlerFunc(s.serveAggregations)))
	mux.Handle("/", getOnly(http.HandlerFunc(s.servePage)))
	return securityHeaders(mux)
}

// Run reads the output topic and, if Config.HTTP is set, serves the
// dashboard with /healthz and /metrics, until ctx is cancelled. A Server
// runs once.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("dashboard: server already ran")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer s.hub.close()

	var httpDone chan error
	if s.cfg.HTTP != "" {
		ln, err := httpx.Listen(s.cfg.HTTP)
		if err != nil {
			return fmt.Errorf("dashboard: %w", err)
		}
		mux := httpx.ComponentMux("/", s.Handler(), s.Ready, s.cfg.Registry)
		httpDone = make(chan error, 1)
		s.log.Info("dashboard listening", "url", "http://"+ln.Addr().String()+"/")
		go func() {
			httpDone <- httpx.Serve(ctx, ln, mux, s.log, s.hub.close)
			cancel() // a failed listener stops the dashboard
		}()
	}
	go s.heartbeat(ctx)
	panelsDone := make(chan struct{})
	go func() { defer close(panelsDone); s.runPanels(ctx) }()
	defer func() { <-panelsDone }()
	err := s.consume(ctx)
	cancel()
	if httpDone != nil {
		if herr := <-httpDone; herr != nil && err == nil {
			err = herr
		}
	}
	return err
}

func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			httpx.MethodNotAllowed(w, "GET, HEAD")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// securityHeaders forbids the page anything from other origins: it has no
// third-party code, and this keeps it that way.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		httpx.WriteError(w, http.StatusNotFound, "not found")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(s.page)
}

func (s *Server) serveWindows(w http.ResponseWriter, r *http.Request) {
	limit := DefaultLimit
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 {
			httpx.WriteError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a positive integer, got %q", q))
			return
		}
		limit = min(n, s.cfg.History)
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, s.hist.latest(limit))
}

// pingFrame keeps idle streams open; see heartbeat.
var pingFrame = []byte(": ping\n\n")

// greeting starts every event stream. The retry hint is for clients that
// use EventSource's own reconnect.
var greeting = []byte("retry: 2000\n: connected\n\n")

// retryAfterSeconds is the Retry-After of a refused event stream. The page
// adds jitter, so refused viewers do not all come back in the same second.
const retryAfterSeconds = 5

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	v := s.hub.subscribe()
	if v == nil {
		s.met.refused.Inc()
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		httpx.WriteError(w, http.StatusServiceUnavailable, "too many viewers")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise hold events back
	if pooled(w, r) {
		s.servePooled(w, v, greeting) // fanout.go
		return
	}
	defer s.hub.unsubscribe(v)
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)

	// write sends frames with one flush: net/http buffers the writes, so
	// a clump of results costs one syscall. The write deadline moves at most
	// once a second (it costs a timer update): a write that starts has
	// between writeTimeout-1s and writeTimeout to finish.
	var deadline time.Time
	write := func(frames ...[]byte) bool {
		if now := time.Now(); deadline.Sub(now) < writeTimeout-time.Second {
			deadline = now.Add(writeTimeout)
			_ = rc.SetWriteDeadline(deadline)
		}
		for _, f := range frames {
			if _, err := w.Write(f); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	if !write(greeting) {
		return
	}
	var frames [][]byte
	for {
		var (
			wait <-chan struct{}
			ok   bool
		)
		frames, wait, ok = s.hub.read(v, frames[:0])
		if !ok {
			return
		}
		if len(frames) > 0 {
			if !write(frames...) {
				return
			}
			clear(frames) // let the ring's old frames go
			continue
		}
		select {
		case <-wait:
		case <-r.Context().Done():
			return
		}
	}
}

// heartbeat sends every viewer a comment every heartbeatInterval, so proxies
// that close silent connections keep the streams open and viewers that went
// away are noticed. One broadcast serves all viewers.
func (s *Server) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.hub.broadcast(pingFrame)
		}
	}
}
