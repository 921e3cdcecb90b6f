package window

import (
	"fmt"
	"time"
)

// Windowed is a key with the window it belongs to: [Start, End) for time
// windows; session and sliding windows include End, as in Kafka Streams.
type Windowed[K any] struct {
	// Key is the record key.
	Key K
	// Start is the window's start, inclusive.
	Start time.Time
	// End is the window's end: exclusive for time windows, inclusive for
	// session and sliding windows.
	End time.Time
}

// String prints the key and the window's bounds in Unix ms, key@[start,end).
func (w Windowed[K]) String() string {
	return fmt.Sprintf("%v@[%d,%d)", w.Key, w.Start.UnixMilli(), w.End.UnixMilli())
}

// Window is the bounds of one window: [Start, End) for time windows.
type Window struct {
	// Start is the first instant of the window.
	Start time.Time
	// End is the window's end: exclusive for time windows.
	End time.Time
}

// Windows is implemented by the window definitions: TimeWindows (tumbling and
// hopping), SessionWindows and SlidingWindows.
type Windows interface {
	// GracePeriod is how long after a window's end records are still accepted.
	GracePeriod() time.Duration
	// closeBound maps a clock reading (ms) to the close watermark: every
	// window whose end is <= the watermark is closed (takes no more records)
	// and is emitted by OnWindowClose.
	closeBound(now int64) int64
	// suppressLead is how far past the close watermark (ms)
	// suppress(untilWindowCloses) emits: 0 for time windows, whose end is
	// exclusive; 1 for session and sliding windows, whose end is inclusive
	// but which suppression treats as exclusive.
	suppressLead() int64
	// windowsFor returns the [start, end) bounds, in ms, of every window that
	// contains ts (ms), oldest first.
	windowsFor(dst [][2]int64, ts int64) [][2]int64
	// maxSize is the largest window size, for retention and fetches.
	maxSize() time.Duration
	// minRetention is the default and smallest retention (see Retention).
	minRetention() time.Duration
	// advanceMs is the step of window boundaries, used to persist the close
	// watermark only when a decision can change.
	advanceMs() int64
	validate() error
}

// TimeWindows are fixed-size windows aligned to the epoch: tumbling when the
// advance equals the size (the default), hopping when it is smaller. A record
// with timestamp ts belongs to every window [start, start+size) with start a
// multiple of advance and start <= ts < start+size.
type TimeWindows struct {
	size, advance, grace time.Duration
}

// OfSize returns tumbling windows of the given size with no grace period.
func OfSize(size time.Duration) TimeWindows { return TimeWindows{size: size, advance: size} }

// OfSizeAndGrace returns tumbling windows that accept records until grace after
// their end.
func OfSizeAndGrace(size, grace time.Duration) TimeWindows {
	return TimeWindows{size: size, advance: size, grace: grace}
}

// AdvanceBy makes the windows hop: a new window starts every advance.
func (w TimeWindows) AdvanceBy(advance time.Duration) TimeWindows { w.advance = advance; return w }

// Grace returns the windows with another grace period.
func (w TimeWindows) Grace(grace time.Duration) TimeWindows { w.grace = grace; return w }

// Size is the window size.
func (w TimeWindows) Size() time.Duration { return w.size }

// Advance is the distance between window starts.
func (w TimeWindows) Advance() time.Duration { return w.advance }

// GracePeriod implements Windows.
func (w TimeWindows) GracePeriod() time.Duration { return w.grace }

func (w TimeWindows) maxSize() time.Duration { return w.size }

// minRetention is Kafka Streams' default for time windows, size + grace: a
// window is kept until one retention after its close (and after a commit
// covered the close, see aggProcessor.purge).
func (w TimeWindows) minRetention() time.Duration { return w.size + w.grace }

// closeBound: a time window [start, end) closes when the clock reaches end + grace.
func (w TimeWindows) closeBound(now int64) int64 { return now - w.grace.Milliseconds() }
func (w TimeWindows) advanceMs() int64           { return w.advance.Milliseconds() }
func (w TimeWindows) suppressLead() int64        { return 0 }

func (w TimeWindows) validate() error {
	switch {
	case w.size < time.Millisecond:
		return fmt.Errorf("%w: size %v must be at least 1ms", ErrInvalidWindows, w.size)
	case w.advance < time.Millisecond || w.advance > w.size:
		return fmt.Errorf("%w: advance %v must be in [1ms, size]", ErrInvalidWindows, w.advance)
	case w.grace < 0:
		return fmt.Errorf("%w: negative grace %v", ErrInvalidWindows, w.grace)
	case w.size%time.Millisecond != 0 || w.advance%time.Millisecond != 0:
		return fmt.Errorf("%w: size and advance must be whole milliseconds", ErrInvalidWindows)
	}
	return nil
}

// WindowsFor returns the windows a record with timestamp ts belongs to,
// oldest first (Kafka Streams' TimeWindows.windowsFor). Like Kafka Streams,
// no window starts before the epoch, and a negative timestamp belongs to no
// window.
func (w TimeWindows) WindowsFor(ts time.Time) []Window {
	var out []Window
	for _, b := range w.windowsFor(nil, ts.UnixMilli()) {
		out = append(out, Window{Start: time.UnixMilli(b[0]).UTC(), End: time.UnixMilli(b[1]).UTC()})
	}
	return out
}

func (w TimeWindows) windowsFor(out [][2]int64, ts int64) [][2]int64 {
	if ts < 0 {
		return out
	}
	size, adv := w.size.Milliseconds(), w.advance.Milliseconds()
	// The last window containing ts starts at floor(ts/adv)*adv.
	last := floorDiv(ts, adv) * adv
	for start := last - ((size-1)/adv)*adv; start <= last; start += adv {
		// Like Kafka Streams, no window starts before the epoch.
		if start < 0 {
			continue
		}
		if start+size > ts {
			out = append(out, [2]int64{start, start + size})
		}
	}
	return out
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// SessionWindows group a key's records into sessions separated by at least
// the inactivity gap. A record within gap of an open session extends it; a
// record that bridges two open sessions merges them; a closed session is
// never extended. Session bounds are the first and last record timestamps,
// both inclusive. A session closes when the clock passes end + gap + grace.
type SessionWindows struct {
	gap, grace time.Duration
}

// OfInactivityGap returns session windows with the given gap and no grace.
func OfInactivityGap(gap time.Duration) SessionWindows { return SessionWindows{gap: gap} }

// OfInactivityGapAndGrace returns session windows with a gap and a grace period.
func OfInactivityGapAndGrace(gap, grace time.Duration) SessionWindows {
	return SessionWindows{gap: gap, grace: grace}
}

// Gap is the inactivity gap.
func (w SessionWindows) Gap() time.Duration { return w.gap }

// GracePeriod implements Windows.
func (w SessionWindows) GracePeriod() time.Duration { return w.grace }

// closeBound: as in Kafka Streams, a record is late when the session it
// makes would end before now - gap - grace, so a session [start, end] (end
// inclusive) closes when the clock passes end + gap + grace: it is closed
// once end <= now - gap - grace - 1.
func (w SessionWindows) closeBound(now int64) int64 {
	return now - w.grace.Milliseconds() - w.gap.Milliseconds() - 1
}

func (w SessionWindows) suppressLead() int64 { return 1 }

func (w SessionWindows) windowsFor(dst [][2]int64, _ int64) [][2]int64 { return dst }
func (w SessionWindows) maxSize() time.Duration                        { return w.gap }

// minRetention keeps closed sessions 5 minutes longer than Kafka Streams'
// default (gap + grace), as before: merges read the session store, and a
// shorter retention for sessions is not cross-checked yet.
func (w SessionWindows) minRetention() time.Duration { return w.gap + w.grace + 5*time.Minute }

// Late decisions can change at every millisecond.
func (w SessionWindows) advanceMs() int64 { return 1 }

func (w SessionWindows) validate() error {
	switch {
	case w.gap < time.Millisecond || w.gap%time.Millisecond != 0:
		return fmt.Errorf("%w: gap %v must be whole milliseconds, at least 1ms", ErrInvalidWindows, w.gap)
	case w.grace < 0:
		return fmt.Errorf("%w: negative grace %v", ErrInvalidWindows, w.grace)
	}
	return nil
}
