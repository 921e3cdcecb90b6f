package dashboard

import (
	"cmp"
	"slices"
	"sync"

	"github.com/emostream/emostream/examples/emostream/wire"
)

// resultKey identifies a result. The aggregator may write a result again
// after a crash, always with the same values, so a key seen before is a
// duplicate.
type resultKey struct {
	start, end int64
	emoji      string
}

// history keeps the most recent results, oldest evicted first.
type history struct {
	mu   sync.Mutex
	ring []wire.Result
	next int // where the next result goes
	full bool
	seen map[resultKey]struct{}
}

func newHistory(capacity int) *history {
	return &history{ring: make([]wire.Result, capacity), seen: make(map[resultKey]struct{}, capacity)}
}

// add stores r and reports whether it was new.
func (h *history) add(r wire.Result) bool {
	k := resultKey{r.WindowStart, r.WindowEnd, r.EmojiType}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.seen[k]; dup {
		return false
	}
	if h.full {
		old := h.ring[h.next]
		delete(h.seen, resultKey{old.WindowStart, old.WindowEnd, old.EmojiType})
	}
	h.ring[h.next] = r
	h.seen[k] = struct{}{}
	h.next++
	if h.next == len(h.ring) {
		h.next, h.full = 0, true
	}
	return true
}

// latest returns up to limit results, newest window first; within a window
// the larger counts come first, so a truncated answer keeps what matters.
func (h *history) latest(limit int) []wire.Result {
	h.mu.Lock()
	n := h.next
	if h.full {
		n = len(h.ring)
	}
	out := slices.Clone(h.ring[:n])
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b wire.Result) int {
		return cmp.Or(
			cmp.Compare(b.WindowEnd, a.WindowEnd),
			cmp.Compare(b.WindowStart, a.WindowStart),
			cmp.Compare(b.Count, a.Count),
			cmp.Compare(a.EmojiType, b.EmojiType),
		)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}
