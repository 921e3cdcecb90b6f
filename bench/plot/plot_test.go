package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func writeFile(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCharts draws every chart from small made-up results, and skips them
// without their inputs.
func TestCharts(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "latest.json", `{"records": 200000, "quick": true, "runs": 3, "partitions": 4, "guarantee": "at_least_once",
		"date": "d1", "settings": {"cores": "2"},
		"engines": {"ours": {"ok": true, "records_per_second": 95000, "cpu_us_per_record": 12, "peak_rss_mb": 60, "broker_cpu_seconds": 0.7},
		            "kstreams": {"ok": true, "records_per_second": 33000, "cpu_us_per_record": 44, "peak_rss_mb": 440, "broker_cpu_seconds": 0.4},
		            "goka": {"ok": false}}}`)
	writeFile(t, dir, "full-5m.json", `{"records": 5000000, "ours_rps": 95000, "kstreams_rps": 228000, "goka_rps": 170000,
		"ours_rss_mb": 70, "kstreams_rss_mb": 1100, "date": "d2"}`)
	writeFile(t, dir, "latency.json", `{"broker": "embedded (emostream run)", "settings": {"rate": 2000, "duration_seconds": 60, "grace_ms": 500},
		"post_latency_ms": {"count": 10, "p50": 3, "p90": 4, "p99": 5, "max": 8},
		"e2e_latency_ms": {"count": 10, "p50": 14, "p90": 117, "p99": 140, "max": 140},
		"window_complete_latency_ms": {"count": 2, "p50": 15, "p90": 140, "p99": 140, "max": 140},
		"target_p99_ms": 200, "windows": [{"window_start": 10000, "first_ms": 10, "last_ms": 15}, {"window_start": 12000, "first_ms": 100, "last_ms": 140}]}`)
	writeFile(t, dir, "ingest.json", `{"broker": "Kafka 127.0.0.1:29092", "duration_seconds": 20, "machine": {"cores": 2},
		"modes": [{"name": "single", "clients": 64, "batch": 1, "emojis_per_second": 10000, "p50_ms": 5, "p99_ms": 17, "target_emojis_per_second": 15000},
		          {"name": "batch", "clients": 8, "batch": 100, "emojis_per_second": 74000, "p50_ms": 10, "p99_ms": 31, "target_emojis_per_second": 50000}]}`)

	writeFile(t, dir, "scale.json", `{"quick": true, "rows": [
		{"keys": 16, "store": "memory", "ours_rps": 300000, "kstreams_rps": 120000, "ratio": 2.5, "identical_results": true},
		{"keys": 1000000, "store": "disk", "ours_rps": 90000, "kstreams_rps": 0, "ratio": 0, "identical_results": false}],
		"restore": {"keys": 1000000, "ours_s": 1.5, "kstreams_s": 9, "ratio": 6}}`)

	var in inputs
	for _, name := range []string{"latest.json", "full-5m.json"} {
		c, err := readCompare(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		in.compares = append(in.compares, c)
	}
	var err error
	if in.latency, err = readLatency(filepath.Join(dir, "latency.json")); err != nil {
		t.Fatal(err)
	}
	if in.ingest, err = readIngest(filepath.Join(dir, "ingest.json")); err != nil {
		t.Fatal(err)
	}
	if in.scale, err = readScale(filepath.Join(dir, "scale.json")); err != nil {
		t.Fatal(err)
	}
	if got := in.scale.Rows[1].Keys; got != 1_000_000 {
		t.Errorf("scale.json: keys of row 2 = %d", got)
	}
	if got := in.compares[1].Engines["kstreams"].RPS; got != 228000 {
		t.Errorf("summary-only file: kstreams rps = %v", got)
	}
	charts := []chart{{"t.png", drawThroughput}, {"r.png", drawRSS}, {"c.png", drawCPU}, {"l.png", drawLatency}, {"i.png", drawIngest}, {"s.png", drawScale}}
	for _, c := range charts {
		path := filepath.Join(dir, c.file)
		if err := c.draw(in, path); err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
			t.Errorf("%s: not written (%v)", c.file, err)
		}
		var skip errSkip
		if err := c.draw(inputs{}, path); !errors.As(err, &skip) {
			t.Errorf("%s without inputs: %v, want a skip", c.file, err)
		}
	}
	if _, err := readCompare(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestNiceTicks(t *testing.T) {
	labels := func(lo, hi float64) []string {
		var out []string
		for _, tk := range (niceTicks{}).Ticks(lo, hi) {
			if tk.Label != "" {
				out = append(out, tk.Label)
			}
		}
		return out
	}
	for _, tc := range []struct {
		lo, hi float64
		want   []string
	}{
		{0, 230000, []string{"0", "50,000", "100,000", "150,000", "200,000"}},
		{0, 0.7, []string{"0.0", "0.2", "0.4", "0.6"}},
		{0, 1300, []string{"0", "250", "500", "750", "1,000", "1,250"}},
	} {
		if got := labels(tc.lo, tc.hi); !slices.Equal(got, tc.want) {
			t.Errorf("ticks(%v, %v) = %v, want %v", tc.lo, tc.hi, got, tc.want)
		}
	}
}
