package harness

import (
	"testing"
	"time"
)

func TestQuantileNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0, time.Millisecond}, {0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		if got := Quantile(s, tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := Quantile(nil, 0.5); got != 0 {
		t.Errorf("Quantile(nil) = %v", got)
	}
}

func TestSummarise(t *testing.T) {
	d := Summarise([]time.Duration{30 * time.Millisecond, -10 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond})
	want := Dist{Count: 4, Min: -10, Mean: 20, P50: 10, P90: 50, P99: 50, P999: 50, Max: 50}
	if d != want {
		t.Errorf("Summarise = %+v, want %+v", d, want)
	}
	if (Summarise(nil) != Dist{}) {
		t.Error("Summarise(nil) is not empty")
	}
}

func TestFormatMS(t *testing.T) {
	for v, want := range map[float64]string{0.25: "250µs", 3.456: "3.46ms", 140.04: "140.0ms", 12500: "12.5s"} {
		if got := FormatMS(v); got != want {
			t.Errorf("FormatMS(%v) = %q, want %q", v, got, want)
		}
	}
}
