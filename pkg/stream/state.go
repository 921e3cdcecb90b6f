package stream

import (
	"log/slog"
	"slices"
	"strconv"
)

// State is where an App is in its life, as Kafka Streams'
// KafkaStreams.State: what an operator waits for before the next step of a
// rolling restart (RUNNING), and what a readiness probe reports.
type State int32

const (
	// StateCreated: NewApp returned and Run was not called yet.
	StateCreated State = iota
	// StateRebalancing: connecting and joining the group, or tasks of the
	// current assignment are still being created or restoring their stores
	// (a restart after a failure passes through it again).
	StateRebalancing
	// StateRunning: every task of the current assignment is processing.
	// Under cooperative rebalancing the App stays RUNNING while the group
	// rebalances, until the new assignment brings a task it must create.
	StateRunning
	// StatePendingShutdown: Run's context ended; the final commit and the
	// hand-over are under way.
	StatePendingShutdown
	// StateNotRunning: Run returned nil.
	StateNotRunning
	// StateError: Run returned an error.
	StateError
)

var stateNames = [...]string{"CREATED", "REBALANCING", "RUNNING", "PENDING_SHUTDOWN", "NOT_RUNNING", "ERROR"}

// String returns the state's name as Kafka Streams spells it: CREATED,
// REBALANCING, RUNNING, PENDING_SHUTDOWN, NOT_RUNNING or ERROR.
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// OnStateChange calls fn with the old and the new state at every change of
// the App's state (Kafka Streams' setStateListener). fn runs on the
// runtime's goroutines, one call at a time and in order; it must return
// quickly and must not call the App's Run.
func OnStateChange(fn func(old, new State)) Opt {
	return optFunc(func(c *config) { c.onState = fn })
}

// State returns the App's current state.
func (a *App) State() State { return State(a.state.Load()) }

// setState moves the App to s (a no-op when it is there already) and tells
// the listener. Terminal states stay.
func (a *App) setState(s State) {
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	old := State(a.state.Load())
	if old == s || old == StateNotRunning || old == StateError {
		return
	}
	if old == StatePendingShutdown && (s == StateRebalancing || s == StateRunning) {
		return
	}
	a.state.Store(int32(s))
	a.cfg.logger.Info("stream state", slog.String("application_id", a.cfg.appID), slog.String("from", old.String()), slog.String("to", s.String()))
	if a.cfg.onState != nil {
		a.cfg.onState(old, s)
	}
}

// refreshState sets RUNNING or REBALANCING from the runtime's progress:
// RUNNING once a session is processing, no task is being created, and every
// partition of the last assignment has its task.
func (a *App) refreshState() {
	a.mu.RLock()
	defer a.mu.RUnlock()
	a.refreshStateLocked()
}

// refreshStateLocked is refreshState for a caller holding a.mu.
func (a *App) refreshStateLocked() {
	life := a.life
	if life == nil || life.ctx.Err() != nil {
		return
	}
	running := life.phase.Load() == phaseProcessing && len(a.building) == 0
	for topic, parts := range a.assigned {
		for _, p := range parts {
			if a.byClaim[topic][p] == nil {
				running = false
			}
		}
	}
	if running {
		a.setState(StateRunning)
	} else {
		a.setState(StateRebalancing)
	}
}

// noteAssignment records the active partitions of a new assignment (from
// the assignor's OnAssignment, before their claims start) and refreshes the
// state: a partition without a task yet means REBALANCING.
func (a *App) noteAssignment(active map[string][]int32) {
	a.mu.Lock()
	a.assigned = map[string][]int32{}
	for topic, parts := range active {
		a.assigned[topic] = slices.Clone(parts)
	}
	a.mu.Unlock()
	a.refreshState()
}
