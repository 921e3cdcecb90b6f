package window

import (
	"errors"
	"fmt"
	"time"

	"github.com/emostream/emostream/pkg/stream"
)

// SlidingWindows are Kafka Streams' sliding windows (KIP-450): windows of a
// fixed time difference, inclusive at both ends, defined by the records
// rather than by the epoch. A record at ts has a left window [ts-diff, ts]
// and, when a later record of the key falls in it, a right window
// [ts+1, ts+1+diff]; each distinct non-empty window exists once. Records
// with ts < diff share the window [0, diff] instead of left windows with
// negative starts.
//
// A window [start, end] accepts records until the clock passes end + grace:
// it closes when the clock reaches end + grace + 1. A record is late when
// every window containing it is closed (ts + diff + grace < clock). Results
// carry Windowed keys whose End is inclusive (start + diff), as in Kafka
// Streams.
type SlidingWindows struct {
	diff, grace time.Duration
}

// OfTimeDifference returns sliding windows of the given time difference (the
// window size, both ends inclusive) with no grace period.
func OfTimeDifference(timeDifference time.Duration) SlidingWindows {
	return SlidingWindows{diff: timeDifference}
}

// OfTimeDifferenceAndGrace returns sliding windows of the given time
// difference that accept records until grace after their end.
func OfTimeDifferenceAndGrace(timeDifference, grace time.Duration) SlidingWindows {
	return SlidingWindows{diff: timeDifference, grace: grace}
}

// TimeDifference is the window size: a window spans [start, start+diff].
func (w SlidingWindows) TimeDifference() time.Duration { return w.diff }

// GracePeriod implements Windows.
func (w SlidingWindows) GracePeriod() time.Duration { return w.grace }

// closeBound: a window [start, end] (end inclusive) takes records while
// end >= now - grace, so it is closed once end <= now - grace - 1.
func (w SlidingWindows) closeBound(now int64) int64 { return now - w.grace.Milliseconds() - 1 }
func (w SlidingWindows) suppressLead() int64        { return 1 }

func (w SlidingWindows) windowsFor(dst [][2]int64, _ int64) [][2]int64 { return dst }

// maxSize is the span a record looks back over (2 * diff): windows starting
// there are read to build a new record's windows.
func (w SlidingWindows) maxSize() time.Duration { return 2 * w.diff }

// minRetention keeps windows 5 minutes longer than Kafka Streams' default
// (2 * diff + grace), as before: a shorter retention for sliding windows is
// not cross-checked yet.
func (w SlidingWindows) minRetention() time.Duration { return 2*w.diff + w.grace + 5*time.Minute }

// Late decisions can change at every millisecond.
func (w SlidingWindows) advanceMs() int64 { return 1 }

func (w SlidingWindows) validate() error {
	switch {
	case w.diff < time.Millisecond || w.diff%time.Millisecond != 0:
		return fmt.Errorf("%w: time difference %v must be whole milliseconds, at least 1ms", ErrInvalidWindows, w.diff)
	case w.grace < 0:
		return fmt.Errorf("%w: negative grace %v", ErrInvalidWindows, w.grace)
	}
	return nil
}

// slidingWin is a stored sliding window: its start, and its aggregate with
// the largest record timestamp in it (the algorithm needs it to place new
// windows).
type slidingWin[A any] struct {
	start int64
	value timed[A]
}

// slidingStep is the state of processing one record.
type slidingStep[K, V, A, O any] struct {
	ctx   stream.ProcessorContext[Windowed[K], O]
	rec   stream.Record[K, V]
	kb    []byte
	ts    int64
	d     int64
	bound int64 // windows with end <= bound are closed
	added int   // windows the record was added to
}

// fetchSliding returns the key's windows with start in [from, to], by start.
func (p *aggProcessor[K, V, A, O]) fetchSliding(kb []byte, from, to int64) ([]slidingWin[A], error) {
	var out []slidingWin[A]
	err := p.scanKey(kb, from, to, func(_ []byte, start, _ int64, v timed[A]) error {
		out = append(out, slidingWin[A]{start: start, value: v})
		return nil
	})
	return out, err
}

// processSliding follows Kafka Streams' sliding window aggregation
// (KStreamSlidingWindowAggregate): update the existing windows that contain
// the record, then create the record's left window, the previous record's
// right window and the record's right window where they are missing and not
// empty, new windows starting from the aggregates of their neighbours.
//
// Kafka Streams drops a record only when its right window would be closed
// (ts + diff < stream time - grace); a record that passes that test can still
// find every window holding it closed, and then counts one drop per closed
// window. Ours is aggregated nowhere in that case too, and is late: it goes
// to the late-records topic (or is dropped) once.
func (p *aggProcessor[K, V, A, O]) processSliding(ctx stream.ProcessorContext[Windowed[K], O], rec stream.Record[K, V], kb []byte, ts, bound int64) error {
	d := p.w.(SlidingWindows).diff.Milliseconds()
	// Every window holding ts ends by ts + diff.
	// Every window the record touches ends at ts or later: a decision on
	// the wall clock's part of bound is possible only from there.
	if ts <= bound {
		if err := p.settle(ctx, ts, bound); err != nil {
			return err
		}
	}
	late := ts+d <= bound
	// The windows a record touches depend on the state it finds, so
	// redelivery is recognised per record key, as for sessions.
	_, applied, err := p.keys.Update(kb, func(n int64, _ bool) (int64, error) {
		if late {
			return 0, errLate
		}
		return n + 1, nil
	})
	switch {
	case late && errors.Is(err, errLate):
		return p.reject(ctx, "late")
	case err != nil:
		return err
	case !applied:
		// Redelivered: the windows already include the record. Re-send the
		// open ones holding it so downstream sees their current values.
		if p.o.emit == OnWindowUpdate {
			wins, err := p.fetchSliding(kb, max(0, ts-d), ts)
			if err != nil {
				return err
			}
			for _, w := range wins {
				if w.start+d > bound {
					p.forward(ctx, rec.Key, w.start, w.start+d, w.value)
				}
			}
		}
		return nil
	}
	s := &slidingStep[K, V, A, O]{ctx: ctx, rec: rec, kb: kb, ts: ts, d: d, bound: bound}
	if ts < d {
		err = p.slideEarly(s)
	} else {
		err = p.slide(s)
	}
	if err != nil {
		return err
	}
	if s.added == 0 {
		return p.reject(ctx, "late")
	}
	return nil
}

// slide handles a record with ts >= diff. It walks the windows starting in
// [ts - 2*diff, ts + 1] from the newest down, as Kafka Streams does with its
// backward fetch.
func (p *aggProcessor[K, V, A, O]) slide(s *slidingStep[K, V, A, O]) error {
	ts, d := s.ts, s.d
	wins, err := p.fetchSliding(s.kb, max(0, ts-2*d), ts+1)
	if err != nil {
		return err
	}
	starts := make(map[int64]bool, len(wins))
	var left, right *slidingWin[A]
	leftExists, rightExists := false, false
	hasPrev, prev := false, int64(0)
scan:
	for i := len(wins) - 1; i >= 0; i-- {
		w := &wins[i]
		starts[w.start] = true
		end := w.start + d
		switch {
		case w.start == ts+1:
			rightExists = true
		case end > ts:
			// A window holding ts that starts after ts - diff; the newest one
			// holds what the record's right window would.
			if right == nil {
				right = w
			}
			if err := p.slideUpdate(s, w.start, w.value, true); err != nil {
				return err
			}
		case end == ts:
			leftExists = true
			if err := p.slideUpdate(s, w.start, w.value, true); err != nil {
				return err
			}
			if w.value.ts >= ts {
				// A record at ts came before: its windows exist already.
				return nil
			}
			hasPrev, prev = true, w.value.ts
		default:
			// The newest window ending before ts: its latest record is the
			// one before ts.
			left, hasPrev, prev = w, true, w.value.ts
			break scan
		}
	}
	if hasPrev && !starts[prev+1] && prev+1+d >= ts {
		// The previous record's right window now holds this record only.
		if err := p.slideUpdate(s, prev+1, p.fresh(ts), false); err != nil {
			return err
		}
	}
	if !leftExists {
		base := p.fresh(ts)
		if hasPrev && ts-d <= prev {
			base = timed[A]{ts: ts, value: left.value.value}
		}
		if err := p.slideUpdate(s, ts-d, base, false); err != nil {
			return err
		}
	}
	if !rightExists && right != nil && right.value.ts > ts {
		return p.slideCreateRight(s, right)
	}
	return nil
}

// slideEarly handles a record with ts < diff: its left window would start
// before 0, so it goes into the window [0, diff] with every other early
// record (Kafka Streams' processEarly). It walks the windows starting in
// [0, ts + 1] from the oldest up.
func (p *aggProcessor[K, V, A, O]) slideEarly(s *slidingStep[K, V, A, O]) error {
	ts := s.ts
	wins, err := p.fetchSliding(s.kb, 0, ts+1)
	if err != nil {
		return err
	}
	starts := make(map[int64]bool, len(wins))
	var combined, right *slidingWin[A]
	rightExists := false
	hasPrev, prev := false, int64(0)
	for i := range wins {
		w := &wins[i]
		starts[w.start] = true
		switch {
		case w.start == 0:
			combined = w
			if w.value.ts < ts {
				hasPrev, prev = true, w.value.ts
			}
		case w.start <= ts:
			right = w
			if err := p.slideUpdate(s, w.start, w.value, true); err != nil {
				return err
			}
		case w.start == ts+1:
			rightExists = true
		}
	}
	// Without a right window of an earlier record holding ts, the records of
	// [0, diff] after ts are exactly those of the record's right window.
	if right == nil && combined != nil && combined.value.ts > ts {
		right = combined
	}
	if !rightExists && right != nil && right.value.ts > ts {
		if err := p.slideCreateRight(s, right); err != nil {
			return err
		}
	}
	if hasPrev && !starts[prev+1] {
		if err := p.slideUpdate(s, prev+1, p.fresh(ts), false); err != nil {
			return err
		}
	}
	if combined == nil {
		return p.slideUpdate(s, 0, p.fresh(ts), false)
	}
	return p.slideUpdate(s, 0, combined.value, true)
}

// slideUpdate adds the record to the window starting at start, unless the
// window is closed. exists says whether the window is stored (then its stored
// value is used); otherwise base is its value before the record.
func (p *aggProcessor[K, V, A, O]) slideUpdate(s *slidingStep[K, V, A, O], start int64, base timed[A], exists bool) error {
	end := start + s.d
	if end <= s.bound {
		return nil // closed: Kafka Streams skips the window, not the record
	}
	s.added++
	wk := encodeWindowKey(s.kb, start, end)
	var v timed[A]
	if exists {
		// A fresh copy from the store, so an aggregator that changes its
		// argument in place cannot alter the neighbour values still in use.
		var err error
		if v, _, err = p.main.Update(wk, func(old timed[A], _ bool) (timed[A], error) {
			return timed[A]{ts: max(old.ts, s.ts), value: p.add(s.rec.Key, s.rec.Value, old)}, nil
		}); err != nil {
			return err
		}
	} else {
		v = timed[A]{ts: max(base.ts, s.ts), value: p.add(s.rec.Key, s.rec.Value, base)}
		if err := p.main.Put(wk, v); err != nil {
			return err
		}
		if err := p.markOpen(s.kb, start, end); err != nil {
			return err
		}
	}
	return p.updated(s.ctx, s.rec.Key, s.kb, start, end, v)
}

// slideCreateRight creates the record's right window [ts+1, ts+1+diff] with
// the aggregate and timestamp of the newest window holding ts (before the
// record was added): the records after ts. It is never closed: the record is
// not late.
func (p *aggProcessor[K, V, A, O]) slideCreateRight(s *slidingStep[K, V, A, O], from *slidingWin[A]) error {
	start := s.ts + 1
	end := start + s.d
	if err := p.main.Put(encodeWindowKey(s.kb, start, end), from.value); err != nil {
		return err
	}
	if err := p.markOpen(s.kb, start, end); err != nil {
		return err
	}
	return p.updated(s.ctx, s.rec.Key, s.kb, start, end, from.value)
}
