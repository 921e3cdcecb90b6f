package harness

import (
	"sync"
	"time"
)

// Sampler calls a function once at the start and then at a fixed interval,
// on a goroutine of its own, until Stop: the loop behind the benchmarks'
// /proc readings while a process runs.
type Sampler struct {
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

// StartSampler calls fn once before it returns, then every interval.
func StartSampler(interval time.Duration, fn func()) *Sampler {
	s := &Sampler{quit: make(chan struct{}), done: make(chan struct{})}
	fn()
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-tick.C:
				fn()
			}
		}
	}()
	return s
}

// Stop ends the sampling and waits until fn is no longer running. It may be
// called more than once.
func (s *Sampler) Stop() {
	s.once.Do(func() { close(s.quit) })
	<-s.done
}
