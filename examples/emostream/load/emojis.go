package load

import (
	"math"
	"math/rand/v2"
	"time"
)

// DefaultEmojis returns the default list: plain pictographs, skin tones,
// ZWJ sequences, flags and a keycap, to exercise the API's grapheme handling
// end to end.
func DefaultEmojis() []string { return append([]string(nil), defaultEmojis...) }

var defaultEmojis = []string{
	"🔥", "😂", "❤️", "👍", "👍🏽", "🎉", "😮", "😢", "👏🏿", "🙌🏼",
	"💯", "🚀", "🇮🇳", "🇧🇷", "🇯🇵", "🏳️‍🌈", "👩‍💻", "👨‍👩‍👧‍👦", "🧑🏾‍🚀", "1️⃣",
	"⚽", "🤯", "🥳", "😍",
}

// trendPeriod is how long one emoji stays the favourite.
const trendPeriod = 15 * time.Second

// picker draws emojis with Zipf-like weights (the i-th most popular about
// 1/(i+1) as often as the first) over a ranking that rotates every
// trendPeriod.
type picker struct {
	emojis []string
	cum    []float64 // cumulative weights by rank
	start  time.Time
}

func newPicker(emojis []string, start time.Time) *picker {
	p := &picker{emojis: emojis, start: start, cum: make([]float64, len(emojis))}
	total := 0.0
	for i := range emojis {
		total += 1 / math.Pow(float64(i+1), 0.9)
		p.cum[i] = total
	}
	return p
}

func (p *picker) pick(r *rand.Rand, now time.Time) string { return p.emojis[p.pickIndex(r, now)] }

// pickIndex is pick's choice as an index into the emoji list.
func (p *picker) pickIndex(r *rand.Rand, now time.Time) int {
	x := r.Float64() * p.cum[len(p.cum)-1]
	rank := 0
	for rank < len(p.cum)-1 && p.cum[rank] < x {
		rank++
	}
	shift := int(now.Sub(p.start) / trendPeriod)
	return (rank + shift) % len(p.emojis)
}
