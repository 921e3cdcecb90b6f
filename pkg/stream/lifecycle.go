package stream

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// DefaultShutdownTimeout is the default [ShutdownTimeout].
const DefaultShutdownTimeout = 8 * time.Second

// ShutdownTimeout bounds how long Run goes on after its context ends (or
// after a failure) to hand its tasks over cleanly: wait for Kafka to
// acknowledge what was produced, commit the offsets that covers, leave the
// group and close its clients (default [DefaultShutdownTimeout]). With a
// healthy cluster that takes milliseconds; with the brokers gone Run gives up
// at the deadline, commits nothing it could not prove (offsets whose output
// was not acknowledged) and returns. A cancellation during the group join or
// while stores restore returns at once: there is nothing to commit yet.
// Values <= 0 keep the default.
func ShutdownTimeout(d time.Duration) Opt {
	return optFunc(func(c *config) { c.shutdownTimeout = d })
}

// DefaultMaxQuickRestarts and DefaultRestartBackoff are the defaults of
// [RestartOnFailure].
const (
	DefaultMaxQuickRestarts = 10
	DefaultRestartBackoff   = time.Second
)

// quickFailure: a runtime that ran less than this before failing failed
// quickly (see RestartOnFailure).
const quickFailure = time.Minute

// maxRestartBackoff caps the doubling backoff between restarts.
const maxRestartBackoff = 30 * time.Second

// RestartOnFailure sets how Run replaces its runtime after a failure, as
// Kafka Streams replaces a dead stream thread. A runtime failure — a
// produce error after the producer's retries (a broker restart that outlasts
// them), a fenced transactional producer, records never acknowledged, an
// error of a processor — stops the runtime (its uncommitted work is
// dropped, never committed) and Run starts a fresh one after backoff: a new
// client, consumer group member and producer, stores restored from their
// changelogs, processing resumed from the committed offsets. The commit
// epochs make sure nothing is counted twice.
//
// backoff doubles after each failure, up to 30 s. A failure within a minute
// of the runtime's start is quick; a runtime that ran longer resets the
// count and the backoff. Run returns the error of the failure that follows
// maxQuickRestarts quick restarts in a row. maxQuickRestarts 0 turns
// restarting off: Run returns the first failure. Errors that a restart
// cannot fix (ErrInvalidTopology, a rejected SASL login, an untrusted TLS
// certificate, a rejected SessionTimeout, a fenced GroupInstanceID) are
// returned at once.
//
// The default is RestartOnFailure(DefaultMaxQuickRestarts,
// DefaultRestartBackoff). Each restart is logged at Error level and counted
// in stream_restarts_total.
func RestartOnFailure(maxQuickRestarts int, backoff time.Duration) Opt {
	return optFunc(func(c *config) {
		c.restart = restartPolicy{set: true, maxQuick: max(maxQuickRestarts, 0), backoff: backoff}
	})
}

type restartPolicy struct {
	set      bool
	maxQuick int
	backoff  time.Duration
}

func (c *config) restartPolicy() restartPolicy {
	p := c.restart
	if !p.set {
		p = restartPolicy{set: true, maxQuick: DefaultMaxQuickRestarts, backoff: DefaultRestartBackoff}
	}
	if p.backoff <= 0 {
		p.backoff = DefaultRestartBackoff
	}
	return p
}

func (c *config) shutdownBudget() time.Duration {
	if c.shutdownTimeout <= 0 {
		return DefaultShutdownTimeout
	}
	return c.shutdownTimeout
}

// runWithRestarts runs the runtime and replaces it after failures (see
// RestartOnFailure).
func (a *App) runWithRestarts(ctx context.Context) (err error) {
	a.setState(StateRebalancing)
	stopState := context.AfterFunc(ctx, func() { a.setState(StatePendingShutdown) })
	defer func() {
		stopState()
		if err != nil {
			a.setState(StateError)
		} else {
			a.setState(StateNotRunning)
		}
	}()
	pol := a.cfg.restartPolicy()
	backoff, quick := pol.backoff, 0
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			a.resetRuntime()
		}
		started := time.Now()
		err := a.run(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if permanent(err) {
			return err
		}
		if time.Since(started) > quickFailure {
			backoff, quick = pol.backoff, 0
		}
		if quick++; quick > pol.maxQuick {
			if pol.maxQuick == 0 {
				return err
			}
			return fmt.Errorf("stream: failed %d times in a row, last: %w", quick, err)
		}
		a.met.restarts.Inc()
		a.cfg.logger.Error("stream application failed; restarting", slog.String("application_id", a.cfg.appID),
			slog.Any("err", err), slog.Duration("in", backoff), slog.Int("quick_failures", quick))
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		// The failed runtime's clients must be gone before the next one
		// starts (a join or commit that outlived the shutdown deadline).
		select {
		case <-ctx.Done():
			return nil
		case <-a.life.leftovers():
		}
		backoff = min(2*backoff, maxRestartBackoff)
	}
}

// permanent: errors a restart cannot fix (a topology that does not fit its
// topics, rejected credentials, an untrusted certificate, a session timeout
// the broker rejects, a group instance id in use elsewhere).
func permanent(err error) bool {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.Is(err, ErrInvalidTopology) || errors.Is(err, sarama.ErrSASLAuthenticationFailed) ||
		errors.Is(err, sarama.ErrInvalidSessionTimeout) || errors.Is(err, sarama.ErrFencedInstancedId) ||
		errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

// resetRuntime clears what a failed runtime left, so the next one starts as
// a fresh App would (the metrics and the options stay).
func (a *App) resetRuntime() {
	a.setState(StateRebalancing)
	a.mu.Lock()
	a.assigned = nil
	a.tasks = map[TaskID]*task{}
	a.byClaim = map[string]map[int32]*task{}
	a.subParts = map[int]int32{}
	a.active = map[TaskID]bool{}
	a.building = map[TaskID]*taskBuild{}
	a.cacheMu.Lock()
	for k, c := range a.cache {
		_ = c.b.Close()
		delete(a.cache, k)
	}
	a.cacheMu.Unlock()
	a.mu.Unlock()
	a.stopStandbys()
	a.claimMu.Lock()
	a.claims = nil
	a.claimMu.Unlock()
	a.partMu.Lock()
	a.partCache = map[string]int32{}
	a.partMu.Unlock()
	a.failMu.Lock()
	a.err = nil
	a.failMu.Unlock()
	a.txnDirty.Store(false)
	if a.cfg.cacheMaxBytes > 0 {
		a.rc = &recordCache{max: a.cfg.cacheMaxBytes}
	}
}

// Session phases (lifecycle.phase).
const (
	phaseJoining    int32 = iota // connecting, creating topics, joining the group
	phaseSetup                   // building tasks, restoring stores
	phaseProcessing              // a session with its tasks
)

// lifecycle is one runtime's bounded shutdown: the context it runs under,
// the deadline after it ends, and the goroutines that may outlive Run
// (blocking sarama calls it stopped waiting for).
type lifecycle struct {
	ctx     context.Context
	phase   atomic.Int32
	bg      sync.WaitGroup
	expired chan struct{} // closed at the shutdown deadline
	once    sync.Once
	budget  time.Duration
	left    chan struct{}
	leftOne sync.Once
}

func newLifecycle(ctx context.Context, budget time.Duration) *lifecycle {
	return &lifecycle{ctx: ctx, expired: make(chan struct{}), budget: budget}
}

// startShutdown starts the shutdown deadline (once) and returns it.
func (l *lifecycle) startShutdown() {
	l.once.Do(func() { time.AfterFunc(l.budget, func() { close(l.expired) }) })
}

// leftovers is closed once every goroutine the runtime left behind ended.
func (l *lifecycle) leftovers() <-chan struct{} {
	if l == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	l.leftOne.Do(func() {
		l.left = make(chan struct{})
		go func() { l.bg.Wait(); close(l.left) }()
	})
	return l.left
}

// errShutdownDeadline: a step of the shutdown did not finish in time.
var errShutdownDeadline = errors.New("stream: shutdown deadline passed")

// bounded runs fn and returns its error, unless the shutdown deadline
// passes first: then fn goes on in the background (tracked, see leftovers)
// and bounded returns errShutdownDeadline. Outside a shutdown fn is not
// bounded.
func (l *lifecycle) bounded(fn func() error) error {
	done := make(chan error, 1)
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		done <- fn()
	}()
	select {
	case err := <-done:
		return err
	case <-l.expired:
		return errShutdownDeadline
	}
}

// await runs fn until it returns or ctx ends. A result that arrives after
// ctx ended is handed to discard (say, to close a client) in the background.
func await[T any](l *lifecycle, ctx context.Context, fn func() (T, error), discard func(T)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result) // unbuffered: a result is taken or discarded
	abandoned := make(chan struct{})
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		v, err := fn()
		select {
		case done <- result{v, err}:
		case <-abandoned:
			if err == nil && discard != nil {
				discard(v)
			}
		}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		close(abandoned)
		var zero T
		return zero, ctx.Err()
	}
}
