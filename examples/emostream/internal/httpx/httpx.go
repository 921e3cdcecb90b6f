package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts of every EmoStream server. There is no WriteTimeout: the
// dashboard's event streams stay open for hours, so handlers that answer
// once set their own write deadline instead.
const (
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout covers a whole request body; 1 MiB needs far less even on
	// a slow link, and it stops clients that trickle bytes to pin a handler.
	ReadTimeout    = 30 * time.Second
	IdleTimeout    = 2 * time.Minute
	MaxHeaderBytes = 64 << 10
	// ShutdownTimeout bounds how long in-flight requests may take to finish
	// after shutdown begins.
	ShutdownTimeout = 15 * time.Second
)

// timeouts are what NewServer uses: the constants above, which tests
// shorten to see slow clients cut off without waiting seconds.
var timeouts = struct{ readHeader, read, idle time.Duration }{ReadHeaderTimeout, ReadTimeout, IdleTimeout}

// NewServer returns an http.Server for h with EmoStream's timeouts. A client
// that sends its headers slower than [ReadHeaderTimeout], or its whole
// request slower than [ReadTimeout], is disconnected: slow clients cannot
// pin connections or handlers for longer.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: timeouts.readHeader,
		ReadTimeout:       timeouts.read,
		IdleTimeout:       timeouts.idle,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Listen opens a TCP listener on addr, naming the address in its error so a
// busy port is easy to spot.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx is cancelled, then stops accepting
// connections and waits up to [ShutdownTimeout] for requests in flight.
// Shutdown waits for handlers to return, so handlers that stream forever
// must be ended by one of the onShutdown functions, which run when shutdown
// begins.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, onShutdown ...func()) error {
	srv := NewServer(h, log)
	for _, f := range onShutdown {
		srv.RegisterOnShutdown(f)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown timed out; closing open connections", "addr", ln.Addr().String())
		err = srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// Error is the contract's error body.
type Error struct {
	Error string `json:"error"`
	// Index is the position of the first bad object of a batch.
	Index *int `json:"index,omitempty"`
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// WriteError writes {"error": msg} with the given status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, Error{Error: msg})
}

// MethodNotAllowed answers 405 naming the allowed methods, in JSON rather
// than net/http's plain-text default so every error has the same shape.
func MethodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	WriteError(w, http.StatusMethodNotAllowed, "method not allowed; use "+allow)
}

// Health answers 200 when every check returns nil and 503 with the first
// failure otherwise. Load balancers only read the status; people read the
// body.
func Health(checks ...func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			MethodNotAllowed(w, "GET, HEAD")
			return
		}
		for _, check := range checks {
			if err := check(); err != nil {
				WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
				return
			}
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// Metrics serves the registry's metrics in the Prometheus text format.
func Metrics(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// NewRegistry returns a registry with the Go runtime and process collectors,
// the baseline every EmoStream process exports.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// ComponentMux is the mux of a component serving alone: its handler at
// pattern, plus /healthz (ready) and /metrics (reg).
func ComponentMux(pattern string, h http.Handler, ready func() error, reg prometheus.Gatherer) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(pattern, h)
	mux.Handle("/healthz", Health(ready))
	mux.Handle("/metrics", Metrics(reg))
	return mux
}
