package main

import (
	"bufio"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHistogram(t *testing.T) {
	page := func(b1, b2, inf, sum float64) *bufio.Scanner {
		return bufio.NewScanner(strings.NewReader(strings.Join([]string{
			"# HELP x_seconds x",
			"# TYPE x_seconds histogram",
			`x_seconds_bucket{le="0.01"} ` + ftoa(b1),
			`x_seconds_bucket{le="0.1"} ` + ftoa(b2),
			`x_seconds_bucket{le="+Inf"} ` + ftoa(inf),
			"x_seconds_sum " + ftoa(sum),
			"x_seconds_count " + ftoa(inf),
			`x_seconds_other{le="1"} 99`,
		}, "\n")))
	}
	before, err := parseHistogram(page(5, 5, 5, 0.02), "x_seconds")
	require.NoError(t, err)
	after, err := parseHistogram(page(55, 104, 105, 3.02), "x_seconds")
	require.NoError(t, err)
	d := after.since(before)
	require.Equal(t, 100.0, d.count)
	s := d.summary()
	require.Equal(t, serverHist{Count: 100, MeanMS: 30, P50AtMostMS: 10, P99AtMostMS: 100}, s)
	require.Equal(t, "p50 ≤ 10ms  p99 ≤ 100ms  mean 30.0ms  (n=100)", s.String())

	require.Equal(t, -1.0, after.since(after).summary().P50AtMostMS, "empty")
	all, err := parseHistogram(page(0, 0, 10, 50), "x_seconds")
	require.NoError(t, err)
	tail := all.summary()
	require.Equal(t, -1.0, tail.P99AtMostMS, "past the last bound")
	require.Contains(t, tail.String(), "beyond the last bucket")

	_, err = parseHistogram(page(1, 1, 1, 1), "y_seconds")
	require.ErrorContains(t, err, "no histogram y_seconds")
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
