package harness

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Dist summarises a latency distribution in milliseconds. Percentiles are
// exact (nearest rank over every sample), not estimated from buckets.
type Dist struct {
	Count int     `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// Summarise returns the distribution of samples (which it sorts in place).
func Summarise(samples []time.Duration) Dist {
	if len(samples) == 0 {
		return Dist{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	return Dist{
		Count: len(samples),
		Min:   ms(samples[0]),
		Mean:  ms(sum / time.Duration(len(samples))),
		P50:   ms(Quantile(samples, 0.50)),
		P90:   ms(Quantile(samples, 0.90)),
		P99:   ms(Quantile(samples, 0.99)),
		P999:  ms(Quantile(samples, 0.999)),
		Max:   ms(samples[len(samples)-1]),
	}
}

// Quantile returns the nearest-rank q-quantile of sorted samples: the
// smallest sample with at least a fraction q of the samples at or below it.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// String renders the distribution in one line.
func (d Dist) String() string {
	if d.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d, min %s, mean %s)",
		FormatMS(d.P50), FormatMS(d.P90), FormatMS(d.P99), FormatMS(d.Max), d.Count, FormatMS(d.Min), FormatMS(d.Mean))
}

// FormatMS renders milliseconds with a precision that suits their size.
func FormatMS(v float64) string {
	switch a := math.Abs(v); {
	case a < 1:
		return fmt.Sprintf("%.0fµs", v*1000)
	case a < 10:
		return fmt.Sprintf("%.2fms", v)
	case a < 10000:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.1fs", v/1000)
	}
}

func ms(d time.Duration) float64 { return Round(float64(d)/float64(time.Millisecond), 3) }

// Round rounds v to the given number of decimal digits.
func Round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
