package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/emostream/emostream/bench/internal/harness"
)

// report is bench/results/latency.json; bench/README.md documents it.
type report struct {
	harness.RunInfo
	Settings settings    `json:"settings"`
	Startup  startupInfo `json:"startup"`
	Sent     sent        `json:"sent"`
	// PostLatency is POST→202 per request, in ms.
	PostLatency harness.Dist `json:"post_latency_ms"`
	// EndToEnd is SSE receive time − (window_end + grace) per window
	// result, in ms.
	EndToEnd harness.Dist `json:"e2e_latency_ms"`
	// WindowComplete is the same for the last result of each window: when
	// the window was complete on the dashboard.
	WindowComplete harness.Dist `json:"window_complete_latency_ms"`
	TargetP99MS    float64      `json:"target_p99_ms"`
	MeetsTarget    bool         `json:"meets_target"`
	Check          check        `json:"check"`
	Process        processInfo  `json:"process"`
	// Windows lists every measured window.
	Windows []windowInfo `json:"windows"`
	// SamplesMS are the end-to-end latencies of every result, in arrival
	// order, for plots.
	SamplesMS []float64 `json:"samples_ms"`
	// Viewers is the -viewers crowd, when there was one.
	Viewers  *viewersInfo `json:"viewers,omitempty"`
	Problems []string     `json:"problems,omitempty"`

	// measured is the first arrival of every measured result.
	measured []arrival
}

type settings struct {
	DurationSeconds float64 `json:"duration_seconds"`
	Rate            float64 `json:"rate"`
	Batch           int     `json:"batch"`
	Clients         int     `json:"clients"`
	WindowMS        int64   `json:"window_ms"`
	GraceMS         int64   `json:"grace_ms"`
	Partitions      int     `json:"partitions"`
	Emojis          int     `json:"emojis"`
	ExactlyOnce     bool    `json:"exactly_once"`
}

type startupInfo struct {
	HealthySeconds     float64 `json:"healthy_seconds"`
	FirstResultSeconds float64 `json:"first_result_seconds"`
}

type sent struct {
	Elapsed  float64          `json:"elapsed_seconds"`
	Requests int64            `json:"requests"`
	Accepted int64            `json:"emojis_accepted"`
	Rate     float64          `json:"emojis_per_second"`
	Errors   int64            `json:"errors"`
	Behind   int64            `json:"behind"`
	ByStatus map[string]int64 `json:"by_status"`
}

type check struct {
	Windows     int   `json:"windows"`
	Expected    int   `json:"expected_results"`
	Received    int   `json:"received_results"`
	Checked     int   `json:"checked_results"`
	Matching    int   `json:"matching"`
	Missing     int   `json:"missing"`
	WrongCount  int   `json:"wrong_count"`
	Unexpected  int   `json:"unexpected"`
	Duplicates  int   `json:"duplicates"`
	Conflicting int   `json:"conflicting"`
	Uncertain   int   `json:"uncertain_windows"`
	LateRecords int64 `json:"late_records"`
	BadEvents   int   `json:"bad_events"`
	CountsMatch bool  `json:"counts_match"`
}

type processInfo struct {
	CPUSeconds      float64 `json:"cpu_seconds"`
	PeakRSSMB       float64 `json:"peak_rss_mb"`
	BenchCPUSeconds float64 `json:"bench_cpu_seconds"`
}

type windowInfo struct {
	Start   int64   `json:"window_start"`
	Emojis  int64   `json:"emojis"`
	Results int     `json:"results"`
	FirstMS float64 `json:"first_ms"`
	LastMS  float64 `json:"last_ms"`
}

// analyse matches the results that arrived for windows startWindow ..
// lastWindow against the sender's log and computes the latencies.
func analyse(o *options, snd *sender, arrivals []arrival, startWindow, lastWindow int64) *report {
	snd.mu.Lock()
	defer snd.mu.Unlock()
	r := &report{
		Settings: settings{
			DurationSeconds: o.duration.Seconds(), Rate: o.rate, Batch: o.batch, Clients: o.clients,
			WindowMS: o.window.Milliseconds(), GraceMS: o.grace.Milliseconds(), Partitions: o.partitions,
			Emojis: len(snd.emojis), ExactlyOnce: o.exactlyOnce,
		},
		TargetP99MS: float64(o.target) / float64(time.Millisecond),
	}
	r.Sent = sent{Requests: snd.requests, Accepted: snd.emojisOK, Errors: snd.errors, Behind: snd.behind,
		ByStatus: map[string]int64{}}
	for code, n := range snd.byStatus {
		name := fmt.Sprint(code)
		if code == 0 {
			name = "transport"
		}
		r.Sent.ByStatus[name] = n
	}
	if o.duration > 0 {
		r.Sent.Rate = harness.Round(float64(snd.emojisOK)/o.duration.Seconds(), 1)
	}
	r.PostLatency = harness.Summarise(slices.Clone(snd.postLat))

	measured := map[string]bool{}
	for _, e := range snd.emojis {
		measured[e] = true
	}
	grace := o.grace
	first := map[wkey]arrival{}
	var e2e []time.Duration
	windows := map[int64]*windowInfo{}
	for _, a := range arrivals {
		k := wkey{a.res.WindowStart, a.res.EmojiType}
		if !measured[k.emoji] || k.start < startWindow || k.start > lastWindow {
			continue // the warm-up emoji, or a window outside the measurement
		}
		r.Check.Received++
		if prev, dup := first[k]; dup {
			r.Check.Duplicates++
			if prev.res != a.res {
				r.Check.Conflicting++
			}
			continue
		}
		first[k] = a
		r.measured = append(r.measured, a)
		closeAt := time.UnixMilli(a.res.WindowEnd).Add(grace)
		lat := a.at.Sub(closeAt)
		e2e = append(e2e, lat)
		r.SamplesMS = append(r.SamplesMS, harness.Round(float64(lat)/float64(time.Millisecond), 3))
		w := windows[k.start]
		if w == nil {
			w = &windowInfo{Start: k.start, FirstMS: float64(lat) / float64(time.Millisecond)}
			windows[k.start] = w
		}
		w.Results++
		w.Emojis += a.res.Count
		w.LastMS = max(w.LastMS, float64(lat)/float64(time.Millisecond))
		w.FirstMS = min(w.FirstMS, float64(lat)/float64(time.Millisecond))
	}
	r.EndToEnd = harness.Summarise(e2e)
	r.MeetsTarget = r.EndToEnd.Count > 0 && r.EndToEnd.P99 <= r.TargetP99MS

	var complete []time.Duration
	for _, w := range windows {
		w.FirstMS, w.LastMS = harness.Round(w.FirstMS, 3), harness.Round(w.LastMS, 3)
		r.Windows = append(r.Windows, *w)
		complete = append(complete, time.Duration(w.LastMS*float64(time.Millisecond)))
	}
	slices.SortFunc(r.Windows, func(a, b windowInfo) int { return int(a.Start - b.Start) })
	r.WindowComplete = harness.Summarise(complete)

	// Counts: every (window, emoji) the API accepted must be on the stream
	// with exactly that count; nothing else may be.
	expWindows := map[int64]bool{}
	for k, n := range snd.accepted {
		expWindows[k.start] = true
		r.Check.Expected++
		if snd.uncertain[k.start] {
			continue
		}
		r.Check.Checked++
		a, ok := first[k]
		switch {
		case !ok:
			r.Check.Missing++
		case a.res.Count != n:
			r.Check.WrongCount++
		default:
			r.Check.Matching++
		}
	}
	for k := range first {
		if _, ok := snd.accepted[k]; !ok && !snd.uncertain[k.start] {
			r.Check.Unexpected++
		}
	}
	r.Check.Windows = len(expWindows)
	r.Check.Uncertain = len(snd.uncertain)
	return r
}

func (r *report) print(w io.Writer) {
	s := r.Settings
	fmt.Fprintf(w, "\nlatency: %.0fs at %.0f emojis/s (batches of %d, %d clients), window %dms + grace %dms, %d partitions, broker: %s, %d cores\n",
		s.DurationSeconds, s.Rate, s.Batch, s.Clients, s.WindowMS, s.GraceMS, s.Partitions, r.Broker, r.Machine.Cores)
	fmt.Fprintf(w, "  startup      healthy after %.1fs, first result after %.1fs (not measured)\n", r.Startup.HealthySeconds, r.Startup.FirstResultSeconds)
	fmt.Fprintf(w, "  sent         %d emojis accepted in %d requests (%.0f/s), %d errors %v, %d slots behind\n",
		r.Sent.Accepted, r.Sent.Requests, r.Sent.Rate, r.Sent.Errors, r.Sent.ByStatus, r.Sent.Behind)
	fmt.Fprintf(w, "  POST→202     %s\n", r.PostLatency)
	fmt.Fprintf(w, "  end-to-end   %s\n", r.EndToEnd)
	fmt.Fprintf(w, "               (SSE receive − (window_end + grace), every result)\n")
	fmt.Fprintf(w, "  window done  %s\n", r.WindowComplete)
	fmt.Fprintf(w, "               (the last result of each window)\n")
	c := r.Check
	fmt.Fprintf(w, "  counts       %d of %d checked results match what was sent over %d windows: %d missing, %d wrong, %d unexpected, %d duplicates (%d conflicting), %d windows uncertain (failed requests)\n",
		c.Matching, c.Checked, c.Windows, c.Missing, c.WrongCount, c.Unexpected, c.Duplicates, c.Conflicting, c.Uncertain)
	late := fmt.Sprint(c.LateRecords)
	if c.LateRecords < 0 {
		late = "unknown"
	}
	fmt.Fprintf(w, "  late         %s records went to the DLQ as late during the measurement\n", late)
	fmt.Fprintf(w, "  emostream    %.1f CPU s during the measurement, peak RSS %.0f MiB; this benchmark %.1f CPU s\n",
		r.Process.CPUSeconds, r.Process.PeakRSSMB, r.Process.BenchCPUSeconds)
	verdict := "met"
	if !r.MeetsTarget {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "  target       end-to-end p99 ≤ %s beyond window_end + grace: %s (p99 %s)\n",
		harness.FormatMS(r.TargetP99MS), verdict, harness.FormatMS(r.EndToEnd.P99))
	if r.Viewers != nil {
		r.Viewers.print(w, r.TargetP99MS)
	}
	if c.CountsMatch {
		fmt.Fprintln(w, "  result       every count matches")
	} else {
		fmt.Fprintln(w, "  result       COUNTS DO NOT MATCH")
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "  problems     %s\n", strings.Join(r.Problems, "; "))
	}
}
