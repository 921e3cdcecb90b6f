package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// compareRun is the part of a bench/compare result file (latest.json,
// full-5m.json) the charts use.
type compareRun struct {
	file       string
	Records    int                       `json:"records"`
	Quick      bool                      `json:"quick"`
	Partitions int                       `json:"partitions"`
	Guarantee  string                    `json:"guarantee"`
	Runs       int                       `json:"runs"`
	Date       string                    `json:"date"`
	Engines    map[string]*compareEngine `json:"engines"`
	Settings   map[string]string         `json:"settings"`
	// The summary fields, used when a file has no per-engine section.
	OursRPS      float64 `json:"ours_rps"`
	KStreamsRPS  float64 `json:"kstreams_rps"`
	GokaRPS      float64 `json:"goka_rps"`
	OursRSSMB    float64 `json:"ours_rss_mb"`
	KStreamsRSSM float64 `json:"kstreams_rss_mb"`
}

type compareEngine struct {
	OK               bool    `json:"ok"`
	RPS              float64 `json:"records_per_second"`
	RPSAfterFirst    float64 `json:"records_per_second_after_first_result"`
	CPUSeconds       float64 `json:"cpu_seconds"`
	CPUMicrosPerRec  float64 `json:"cpu_us_per_record"`
	PeakRSSMB        float64 `json:"peak_rss_mb"`
	BrokerCPUSeconds float64 `json:"broker_cpu_seconds"`
	MatchesExpected  bool    `json:"matches_expected"`
}

// engineOrder is the order, and the names, of the engines on the charts.
var engineOrder = []struct{ key, label string }{
	{"ours", "ours (pkg/stream)"},
	{"kstreams", "Kafka Streams 4.4"},
	{"goka", "goka floor"},
	{"goka-loopback", "goka loopback"},
}

func readCompare(path string) (*compareRun, error) {
	var c compareRun
	if err := readJSON(path, &c); err != nil {
		return nil, err
	}
	if c.Records == 0 {
		return nil, fmt.Errorf("%s: no records field: not a bench/compare result", path)
	}
	if len(c.Engines) == 0 {
		// Only the summary: rebuild what it holds.
		c.Engines = map[string]*compareEngine{}
		add := func(k string, rps, rss float64) {
			if rps > 0 {
				c.Engines[k] = &compareEngine{OK: true, RPS: rps, PeakRSSMB: rss}
			}
		}
		add("ours", c.OursRPS, c.OursRSSMB)
		add("kstreams", c.KStreamsRPS, c.KStreamsRSSM)
		add("goka", c.GokaRPS, 0)
	}
	return &c, nil
}

// label names the run on a chart: "200,000 records (QUICK, median of 3)".
func (c *compareRun) label() string {
	s := thousands(c.Records) + " records"
	var notes []string
	if c.Quick {
		notes = append(notes, "QUICK")
	}
	if c.Runs > 1 {
		notes = append(notes, fmt.Sprintf("median of %d", c.Runs))
	}
	if c.Guarantee != "" && c.Guarantee != "at_least_once" {
		notes = append(notes, strings.ReplaceAll(c.Guarantee, "_", "-"))
	}
	if len(notes) > 0 {
		s += " (" + joinComma(notes) + ")"
	}
	return s
}

// latencyRun is the part of bench/results/latency.json the chart uses.
type latencyRun struct {
	Date     string `json:"date"`
	Broker   string `json:"broker"`
	Settings struct {
		DurationSeconds float64 `json:"duration_seconds"`
		Rate            float64 `json:"rate"`
		Batch           int     `json:"batch"`
		WindowMS        int64   `json:"window_ms"`
		GraceMS         int64   `json:"grace_ms"`
	} `json:"settings"`
	Post           dist    `json:"post_latency_ms"`
	EndToEnd       dist    `json:"e2e_latency_ms"`
	WindowComplete dist    `json:"window_complete_latency_ms"`
	TargetP99MS    float64 `json:"target_p99_ms"`
	Windows        []struct {
		Start   int64   `json:"window_start"`
		FirstMS float64 `json:"first_ms"`
		LastMS  float64 `json:"last_ms"`
	} `json:"windows"`
	Check struct {
		CountsMatch bool `json:"counts_match"`
	} `json:"check"`
	Machine struct {
		Cores int `json:"cores"`
	} `json:"machine"`
}

type dist struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func readLatency(path string) (*latencyRun, error) {
	var l latencyRun
	if err := readJSON(path, &l); err != nil {
		return nil, err
	}
	if l.EndToEnd.Count == 0 && l.Post.Count == 0 {
		return nil, fmt.Errorf("%s: no latency samples", path)
	}
	return &l, nil
}

// ingestRun is the part of bench/results/ingest.json the chart uses.
type ingestRun struct {
	Date            string  `json:"date"`
	Broker          string  `json:"broker"`
	DurationSeconds float64 `json:"duration_seconds"`
	Machine         struct {
		Cores int `json:"cores"`
	} `json:"machine"`
	Modes []struct {
		Name            string  `json:"name"`
		Clients         int     `json:"clients"`
		Batch           int     `json:"batch"`
		EmojisPerSecond float64 `json:"emojis_per_second"`
		Errors          int64   `json:"errors"`
		P50MS           float64 `json:"p50_ms"`
		P99MS           float64 `json:"p99_ms"`
		Target          float64 `json:"target_emojis_per_second"`
	} `json:"modes"`
}

func readIngest(path string) (*ingestRun, error) {
	var g ingestRun
	if err := readJSON(path, &g); err != nil {
		return nil, err
	}
	if len(g.Modes) == 0 {
		return nil, fmt.Errorf("%s: no modes", path)
	}
	return &g, nil
}

func readJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
