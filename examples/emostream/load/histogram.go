package load

import (
	"math"
	"time"
)

// histogram records latencies in logarithmic buckets 4% wide, from 50µs to
// about a minute: percentiles within 4% in fixed memory, however long the
// run.
type histogram struct {
	counts []int64
	n      int64
	max    time.Duration
}

const (
	histMin    = 50 * time.Microsecond
	histGrowth = 1.04
)

var histBuckets = int(math.Ceil(math.Log(float64(time.Minute/histMin))/math.Log(histGrowth))) + 1

func newHistogram() *histogram { return &histogram{counts: make([]int64, histBuckets)} }

func bucketOf(d time.Duration) int {
	if d <= histMin {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(d)/float64(histMin)) / math.Log(histGrowth)))
	return min(i, histBuckets-1)
}

// upper is the largest latency bucket i holds.
func upper(i int) time.Duration {
	return time.Duration(float64(histMin) * math.Pow(histGrowth, float64(i)))
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	h.max = max(h.max, d)
}

// quantile returns the latency below which a fraction q of the samples lie
// (0 without samples).
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= max(rank, 1) {
			return min(upper(i), h.max)
		}
	}
	return h.max
}

func (h *histogram) reset() {
	clear(h.counts)
	h.n, h.max = 0, 0
}
