package stream

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are an application's Prometheus collectors: records in and out,
// processing latency, consumer lag, store sizes, punctuations and bad records.
// Register them with App.Collector; nothing is registered globally.
type Metrics struct {
	recordsIn    *prometheus.CounterVec
	recordsOut   *prometheus.CounterVec
	restarts     prometheus.Counter
	restored     *prometheus.CounterVec
	standby      *prometheus.CounterVec
	latency      prometheus.Histogram
	lag          *prometheus.GaugeVec
	punctuations *prometheus.CounterVec
	badRecords   *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	storeEntries *prometheus.Desc
	storeSizes   func() map[string]int64
}

func newMetrics(appID string, storeSizes func() map[string]int64) *Metrics {
	labels := prometheus.Labels{"application_id": appID}
	return &Metrics{
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stream", Name: "records_in_total", Help: "Input records processed, by source topic.", ConstLabels: labels,
		}, []string{"topic"}),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stream", Name: "records_out_total", Help: "Records written to sink topics (changelogs excluded), by topic.", ConstLabels: labels,
		}, []string{"topic"}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stream", Name: "restarts_total", Help: "Runtimes replaced after a failure (see RestartOnFailure).", ConstLabels: labels,
		}),
		restored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stream", Name: "restored_records_total", Help: "Changelog records read to restore stores when tasks were assigned (a failover with a warm standby reads only the tail), by store.", ConstLabels: labels,
		}, []string{"store"}),
		standby: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stream", Name: "standby_records_total", Help: "Changelog records applied to standby replicas' copies of stores (see StandbyReplicas), by store.", ConstLabels: labels,
		}, []string{"store"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "stream", Name: "process_latency_seconds", Help: "Time to run one input record through its task (the mean over each batch of buffered records, observed once per batch).", ConstLabels: labels,
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "stream", Name: "consumer_lag_records", Help: "High watermark minus next offset to process, per source partition.", ConstLabels: labels,
		}, []string{"topic", "partition"}),
		punctuations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stream", Name: "punctuations_total", Help: "Punctuations run, by clock.", ConstLabels: labels,
		}, []string{"type"}),
		badRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stream", Name: "bad_records_total", Help: "Input records that could not be decoded, by action taken.", ConstLabels: labels,
		}, []string{"action"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stream", Name: "dead_letters_total", Help: "Input records sent to a dead-letter topic by processors (e.g. late records), by reason.", ConstLabels: labels,
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stream", Name: "dropped_records_total", Help: "Input records processors dropped on purpose, by reason.", ConstLabels: labels,
		}, []string{"reason"}),
		storeEntries: prometheus.NewDesc("stream_store_entries", "Approximate number of keys in the local stores, by store.",
			[]string{"store"}, labels),
		storeSizes: storeSizes,
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.recordsIn.Describe(ch)
	m.recordsOut.Describe(ch)
	m.restarts.Describe(ch)
	m.restored.Describe(ch)
	m.standby.Describe(ch)
	m.latency.Describe(ch)
	m.lag.Describe(ch)
	m.punctuations.Describe(ch)
	m.badRecords.Describe(ch)
	m.deadLetters.Describe(ch)
	m.dropped.Describe(ch)
	ch <- m.storeEntries
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.recordsIn.Collect(ch)
	m.recordsOut.Collect(ch)
	m.restarts.Collect(ch)
	m.restored.Collect(ch)
	m.standby.Collect(ch)
	m.latency.Collect(ch)
	m.lag.Collect(ch)
	m.punctuations.Collect(ch)
	m.badRecords.Collect(ch)
	m.deadLetters.Collect(ch)
	m.dropped.Collect(ch)
	for name, n := range m.storeSizes() {
		ch <- prometheus.MustNewConstMetric(m.storeEntries, prometheus.GaugeValue, float64(n), name)
	}
}
