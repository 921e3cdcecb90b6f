package main

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// histogram is a Prometheus histogram as scraped: cumulative counts per
// upper bound (le), the sum and the count.
type histogram struct {
	le     []float64 // ascending, +Inf last
	counts []float64 // cumulative, per le
	sum    float64
	count  float64
}

// scrapeHistogram reads the histogram name (no labels) from a /metrics
// page at url.
func scrapeHistogram(url, name string) (histogram, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(url)
	if err != nil {
		return histogram{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return histogram{}, fmt.Errorf("GET %s: %s", url, res.Status)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return parseHistogram(sc, name)
}

func parseHistogram(sc *bufio.Scanner, name string) (histogram, error) {
	var h histogram
	type bucket struct{ le, n float64 }
	var bs []bucket
	found := false
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(f[0], name+`_bucket{le="`):
			le, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(f[0], name+`_bucket{le="`), `"}`), 64)
			if err != nil {
				return h, fmt.Errorf("%s: bad bucket %q", name, f[0])
			}
			bs = append(bs, bucket{le, v})
			found = true
		case f[0] == name+"_sum":
			h.sum = v
		case f[0] == name+"_count":
			h.count = v
		}
	}
	if err := sc.Err(); err != nil {
		return h, err
	}
	if !found {
		return h, fmt.Errorf("no histogram %s", name)
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, b := range bs {
		h.le = append(h.le, b.le)
		h.counts = append(h.counts, b.n)
	}
	return h, nil
}

// since is h minus an earlier scrape of the same histogram.
func (h histogram) since(before histogram) histogram {
	d := histogram{le: h.le, counts: make([]float64, len(h.counts)), sum: h.sum - before.sum, count: h.count - before.count}
	for i := range h.counts {
		d.counts[i] = h.counts[i]
		if i < len(before.counts) {
			d.counts[i] -= before.counts[i]
		}
	}
	return d
}

// quantile is the upper bound of the bucket that holds quantile q, the
// most a histogram can tell (+Inf when it is past the last bound, NaN
// when empty).
func (h histogram) quantile(q float64) float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	rank := q * h.count
	for i, c := range h.counts {
		if c >= rank {
			return h.le[i]
		}
	}
	return math.Inf(1)
}

// serverHist is a server-side histogram in the report: seconds turned into
// ms, quantiles as bucket bounds ("at most").
type serverHist struct {
	Count  int64   `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	// P50AtMostMS and P99AtMostMS are the upper bounds of the buckets
	// holding the median and the 99th percentile (-1: past the last).
	P50AtMostMS float64 `json:"p50_at_most_ms"`
	P99AtMostMS float64 `json:"p99_at_most_ms"`
}

func (h histogram) summary() serverHist {
	ms := func(s float64) float64 {
		if math.IsInf(s, 1) || math.IsNaN(s) {
			return -1
		}
		return math.Round(s*1e6) / 1e3
	}
	out := serverHist{Count: int64(h.count), P50AtMostMS: ms(h.quantile(0.5)), P99AtMostMS: ms(h.quantile(0.99))}
	if h.count > 0 {
		out.MeanMS = math.Round(h.sum/h.count*1e6) / 1e3
	}
	return out
}

func (s serverHist) String() string {
	bound := func(v float64) string {
		if v < 0 {
			return "beyond the last bucket"
		}
		return fmt.Sprintf("≤ %gms", v)
	}
	return fmt.Sprintf("p50 %s  p99 %s  mean %.1fms  (n=%d)", bound(s.P50AtMostMS), bound(s.P99AtMostMS), s.MeanMS, s.Count)
}
