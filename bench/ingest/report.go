package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/emostream/emostream/bench/internal/harness"
)

// report is bench/results/ingest.json; bench/README.md documents it.
type report struct {
	harness.RunInfo
	Note            string       `json:"note"`
	DurationSeconds float64      `json:"duration_seconds"`
	WarmupSeconds   float64      `json:"warmup_seconds"`
	Modes           []modeResult `json:"modes"`
	Check           checkInfo    `json:"check"`
	Problems        []string     `json:"problems,omitempty"`
}

// modeResult is one mode's measured run.
type modeResult struct {
	Name                  string           `json:"name"`
	Clients               int              `json:"clients"`
	Batch                 int              `json:"batch"`
	ElapsedSeconds        float64          `json:"elapsed_seconds"`
	Requests              int64            `json:"requests"`
	Accepted              int64            `json:"emojis_accepted"`
	EmojisPerSecond       float64          `json:"emojis_per_second"`
	RequestsPerSecond     float64          `json:"requests_per_second"`
	Errors                int64            `json:"errors"`
	Behind                int64            `json:"behind"`
	ByStatus              map[string]int64 `json:"by_status"`
	P50MS                 float64          `json:"p50_ms"`
	P99MS                 float64          `json:"p99_ms"`
	MaxMS                 float64          `json:"max_ms"`
	TargetEmojisPerSecond float64          `json:"target_emojis_per_second"`
	MeetsTarget           bool             `json:"meets_target"`
	CPUSeconds            cpuShare         `json:"cpu_seconds"`
	APIPeakRSSMB          float64          `json:"api_peak_rss_mb"`
}

// cpuShare is the CPU time each process used during a mode.
type cpuShare struct {
	API float64 `json:"api"`
	// Broker is the broker's CPU time: the embedded broker's, or the local
	// Kafka's of scripts/kafka-local.sh (with every other client's load);
	// -1 for another Kafka, not measured.
	Broker float64 `json:"broker"`
	Load   float64 `json:"load"`
}

type checkInfo struct {
	AcceptedTotal          int64 `json:"accepted_total"`
	TopicRecords           int64 `json:"topic_records"`
	AllAcknowledgedInTopic bool  `json:"all_acknowledged_in_topic"`
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\ningest: %.0fs per mode (after %.0fs warm-up), broker: %s, %d cores shared by load client, API and broker\n",
		r.DurationSeconds, r.WarmupSeconds, r.Broker, r.Machine.Cores)
	fmt.Fprintf(w, "  %-7s %7s %5s %12s %10s %7s %9s %9s %9s  %-22s %s\n",
		"mode", "clients", "batch", "emojis/s", "req/s", "errors", "p50", "p99", "max", "CPU s api/broker/load", "target")
	for _, m := range r.Modes {
		verdict := "met"
		if !m.MeetsTarget {
			verdict = "NOT met"
		}
		broker := fmt.Sprintf("%.1f", m.CPUSeconds.Broker)
		if m.CPUSeconds.Broker < 0 {
			broker = "-"
		}
		fmt.Fprintf(w, "  %-7s %7d %5d %12.0f %10.0f %7d %9s %9s %9s  %-22s ≥ %.0f/s: %s\n",
			m.Name, m.Clients, m.Batch, m.EmojisPerSecond, m.RequestsPerSecond, m.Errors,
			harness.FormatMS(m.P50MS), harness.FormatMS(m.P99MS), harness.FormatMS(m.MaxMS),
			fmt.Sprintf("%.1f / %s / %.1f", m.CPUSeconds.API, broker, m.CPUSeconds.Load), m.TargetEmojisPerSecond, verdict)
	}
	verdict := "yes"
	if !r.Check.AllAcknowledgedInTopic {
		verdict = "NO"
	}
	fmt.Fprintf(w, "  check: %d emojis acknowledged (warm-ups included), %d records in the topic: all there: %s\n",
		r.Check.AcceptedTotal, r.Check.TopicRecords, verdict)
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "  problems: %s\n", strings.Join(r.Problems, "; "))
	}
}
