package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// supervisor runs components in stages and stops them stage by stage: a
// stage is cancelled only after every earlier stage has returned, which is
// what lets the API flush into a broker that is still there.
type supervisor struct {
	log    *slog.Logger
	stages []*stage

	mu     sync.Mutex
	errs   []error
	failed chan struct{}
	once   sync.Once
}

type stage struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newSupervisor(log *slog.Logger, stages int) *supervisor {
	s := &supervisor{log: log, failed: make(chan struct{})}
	for range stages {
		ctx, cancel := context.WithCancel(context.Background())
		s.stages = append(s.stages, &stage{ctx: ctx, cancel: cancel})
	}
	return s
}

// start runs fn in stage i. An error from fn stops everything.
func (s *supervisor) start(i int, name string, fn func(ctx context.Context) error) {
	st := s.stages[i]
	st.wg.Go(func() {
		if err := fn(st.ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.mu.Lock()
			s.errs = append(s.errs, fmt.Errorf("%s: %w", name, err))
			s.mu.Unlock()
			s.once.Do(func() { close(s.failed) })
		}
	})
}

// wait blocks until ctx is cancelled or a component fails, then stops the
// stages in order and returns the components' errors.
func (s *supervisor) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case <-s.failed:
		s.log.Error("a component failed; shutting down")
	}
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

func (s *supervisor) stop() {
	for _, st := range s.stages {
		st.cancel()
		st.wg.Wait()
	}
}
