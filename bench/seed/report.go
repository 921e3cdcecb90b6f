package main

import (
	"fmt"
	"maps"
	"strings"

	"github.com/emostream/emostream/bench/internal/harness"
)

// report is bench/results/seed.json (schema in bench/README.md).
type report struct {
	harness.RunInfo
	LoadAvgStart string         `json:"loadavg_start"`
	LoadAvgEnd   string         `json:"loadavg_end"`
	Settings     settings       `json:"settings"`
	Systems      []systemResult `json:"systems"`
	// EqualCounts: every stack's (window, emoji) counts of the count phase
	// are the same, and each matches the schedule.
	EqualCounts bool `json:"equal_counts"`
	// IngestRatio is ours' accepted requests/s over the seed's.
	IngestRatio float64 `json:"ingest_ratio,omitempty"`
}

type settings struct {
	Partitions    int     `json:"partitions"`
	WindowMS      int64   `json:"window_ms"`
	GraceMS       int64   `json:"grace_ms"`
	CountRate     int     `json:"count_rate"`
	CountSeconds  float64 `json:"count_seconds"`
	TailSeconds   float64 `json:"tail_seconds"`
	IngestClients int     `json:"ingest_clients"`
	IngestSeconds float64 `json:"ingest_seconds"`
	WarmupSeconds float64 `json:"warmup_seconds"`
}

type systemResult struct {
	Name  string `json:"name"`
	Stack string `json:"stack"`
	// Processes counts the processes the stack's tree had, by command.
	Processes          map[string]int `json:"processes"`
	APIReadySeconds    float64        `json:"api_ready_seconds"`
	FirstResultSeconds float64        `json:"first_result_seconds"`
	Counts             countResult    `json:"counts"`
	Ingest             ingestResult   `json:"ingest"`
	CPUSeconds         struct {
		Startup float64 `json:"startup"`
		Counts  float64 `json:"counts"`
		Ingest  float64 `json:"ingest"`
		Total   float64 `json:"total"`
	} `json:"cpu_seconds"`
	// PeakPSSMiB is the peak of the summed PSS of the stack's processes
	// (shared pages counted once), PeakRSSMiB of the summed RSS.
	PeakPSSMiB float64 `json:"peak_pss_mib"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// Largest is the process with the highest peak RSS.
	Largest  largestProc `json:"largest_process"`
	Problems []string    `json:"problems,omitempty"`
}

type largestProc struct {
	Command    string  `json:"command"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
}

type countResult struct {
	Sent     int `json:"sent"`
	Accepted int `json:"accepted"`
	Errors   int `json:"errors"`
	// MaxSendLagMS is how much later than its timestamp an emoji was sent
	// at worst (more than the grace may make it late).
	MaxSendLagMS    float64      `json:"max_send_lag_ms"`
	Windows         int          `json:"windows"`
	ExpectedResults int          `json:"expected_results"`
	Matching        int          `json:"matching"`
	Missing         int          `json:"missing"`
	WrongCount      int          `json:"wrong_count"`
	Unexpected      int          `json:"unexpected"`
	Duplicates      int          `json:"duplicates"`
	Conflicting     int          `json:"conflicting"`
	WrongWindow     int          `json:"wrong_window"`
	BadValues       int          `json:"bad_values"`
	Matches         bool         `json:"matches"`
	DelayMS         harness.Dist `json:"delay_after_window_end_ms"`

	counts map[[2]string]int64
}

type ingestResult struct {
	ElapsedSeconds    float64 `json:"elapsed_seconds"`
	Requests          int64   `json:"requests"`
	Accepted          int64   `json:"accepted"`
	Errors            int64   `json:"errors"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	AcceptedPerSecond float64 `json:"accepted_per_second"`
	P50MS             float64 `json:"p50_ms"`
	P99MS             float64 `json:"p99_ms"`
	MaxMS             float64 `json:"max_ms"`
}

func (r *report) compare() {
	r.EqualCounts = len(r.Systems) > 1
	for _, s := range r.Systems {
		r.EqualCounts = r.EqualCounts && s.Counts.Matches && maps.Equal(s.Counts.counts, r.Systems[0].Counts.counts)
	}
	var seed, ours *systemResult
	for i := range r.Systems {
		switch r.Systems[i].Name {
		case "seed":
			seed = &r.Systems[i]
		case "ours":
			ours = &r.Systems[i]
		}
	}
	if seed != nil && ours != nil && seed.Ingest.AcceptedPerSecond > 0 {
		r.IngestRatio = harness.Round(ours.Ingest.AcceptedPerSecond/seed.Ingest.AcceptedPerSecond, 1)
	}
}

// markdown is the table docs/performance.md and the README quote.
func (r *report) markdown() string {
	var b strings.Builder
	col := func(f func(s systemResult) string) string {
		var cells []string
		for _, s := range r.Systems {
			cells = append(cells, f(s))
		}
		return strings.Join(cells, " | ")
	}
	var names []string
	for _, s := range r.Systems {
		names = append(names, map[string]string{"seed": "seed: Flask + PySpark", "ours": "EmoStream"}[s.Name])
	}
	fmt.Fprintf(&b, "| | %s |\n|---|%s\n", strings.Join(names, " | "), strings.Repeat("---|", len(r.Systems)))
	fmt.Fprintf(&b, "| ingest, single-emoji POSTs, %d connections | %s |\n", r.Settings.IngestClients,
		col(func(s systemResult) string { return fmt.Sprintf("%s req/s", thousands(s.Ingest.AcceptedPerSecond)) }))
	fmt.Fprintf(&b, "| ingest latency p50 / p99 | %s |\n",
		col(func(s systemResult) string {
			return fmt.Sprintf("%s / %s ms", num(s.Ingest.P50MS), num(s.Ingest.P99MS))
		}))
	fmt.Fprintf(&b, "| result delay after window_end, p50 / p99 | %s |\n",
		col(func(s systemResult) string {
			return fmt.Sprintf("%.2f / %.2f s", s.Counts.DelayMS.P50/1000, s.Counts.DelayMS.P99/1000)
		}))
	fmt.Fprintf(&b, "| start-up to first result | %s |\n",
		col(func(s systemResult) string { return fmt.Sprintf("%.1f s", s.FirstResultSeconds) }))
	fmt.Fprintf(&b, "| CPU: start-up / %d s at %d emojis/s / ingest phase | %s |\n", int(r.Settings.CountSeconds+r.Settings.TailSeconds), r.Settings.CountRate,
		col(func(s systemResult) string {
			return fmt.Sprintf("%.1f / %.1f / %.1f s", s.CPUSeconds.Startup, s.CPUSeconds.Counts, s.CPUSeconds.Ingest)
		}))
	fmt.Fprintf(&b, "| peak memory (PSS of all processes) | %s |\n",
		col(func(s systemResult) string { return fmt.Sprintf("%s MiB", thousands(s.PeakPSSMiB)) }))
	fmt.Fprintf(&b, "| peak RSS of the largest process | %s |\n",
		col(func(s systemResult) string {
			return fmt.Sprintf("%s MiB (%s)", thousands(s.Largest.PeakRSSMiB), s.Largest.Command)
		}))
	fmt.Fprintf(&b, "| counts of the %d windows = the emojis sent | %s |\n", int(r.Settings.CountSeconds*1000)/int(r.Settings.WindowMS),
		col(func(s systemResult) string {
			return fmt.Sprintf("%s (%d of %d results)", yes(s.Counts.Matches), s.Counts.Matching, s.Counts.ExpectedResults)
		}))
	if len(r.Systems) > 1 {
		fmt.Fprintf(&b, "\nBoth stacks counted the same emojis per window: %s.", yes(r.EqualCounts))
		if r.IngestRatio > 0 {
			fmt.Fprintf(&b, " Ingest: %.1f× the seed.", r.IngestRatio)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n%s, %s, %d cores; load average %s at the start, %s at the end.\n",
		r.Date, r.Broker, r.Machine.Cores, r.LoadAvgStart, r.LoadAvgEnd)
	return b.String()
}

func yes(v bool) string {
	if v {
		return "yes"
	}
	return "**no**"
}

func num(v float64) string {
	if v >= 10 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
