package dashboard

import "github.com/prometheus/client_golang/prometheus"

// metrics are the dashboard's Prometheus series, prefixed
// emostream_dashboard_.
type metrics struct {
	results    prometheus.Counter
	invalid    prometheus.Counter
	duplicates prometheus.Counter
	latency    prometheus.Histogram
	fanout     prometheus.Histogram
	dropped    prometheus.Counter
	refused    prometheus.Counter
	resets     prometheus.Counter
	restarts   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, viewers func() float64) (*metrics, error) {
	m := &metrics{
		results: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emostream_dashboard_results_total",
			Help: "Window results read from the output topic.",
		}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emostream_dashboard_invalid_results_total",
			Help: "Output records that are not valid window results (skipped).",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emostream_dashboard_duplicate_results_total",
			Help: "Results seen before (rewritten by the aggregator after a restart).",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "emostream_dashboard_result_latency_seconds",
			Help:    "Time from a window's close (window_end + grace) to its result reaching the dashboard.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30},
		}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "emostream_dashboard_fanout_seconds",
			Help:    "Time from a clump of events' first broadcast to the last write of it to a pooled viewer (viewers catching up on their own are not waited for).",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5},
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emostream_dashboard_viewers_dropped_total",
			Help: "Event streams closed because the viewer fell more than Config.ViewerBuffer events behind.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emostream_dashboard_viewers_refused_total",
			Help: "Event streams refused with 503 because Config.MaxViewers were open.",
		}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emostream_dashboard_offset_resets_total",
			Help: "Partitions whose next offset was no longer in the log (broker restarted empty, or retention) and were reset.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emostream_dashboard_consumer_restarts_total",
			Help: "Times the output-topic consumer was set up again after a Kafka failure.",
		}),
	}
	cs := []prometheus.Collector{m.results, m.invalid, m.duplicates, m.latency, m.fanout, m.dropped, m.refused, m.resets, m.restarts,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "emostream_dashboard_viewers",
			Help: "Open /events streams.",
		}, viewers)}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
