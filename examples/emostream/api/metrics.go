package api

import "github.com/prometheus/client_golang/prometheus"

// metrics are the API's Prometheus series, all prefixed emostream_api_.
type metrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
	accepted prometheus.Counter
	failed   prometheus.Counter
	inflight prometheus.Gauge
	kafkaUp  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emostream_api_requests_total",
			Help: "POST /api requests by HTTP status code.",
		}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "emostream_api_request_duration_seconds",
			Help:    "Time from receiving a POST /api request to answering it, acknowledgements included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emostream_api_emojis_accepted_total",
			Help: "Emojis acknowledged by Kafka and answered 202.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "emostream_api_records_failed_total",
			Help: "Records the producer reported as not written.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "emostream_api_inflight_records",
			Help: "Records handed to the producer and not yet acknowledged.",
		}),
		kafkaUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "emostream_api_kafka_up",
			Help: "1 when the last metadata probe of the input topic succeeded.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.accepted, m.failed, m.inflight, m.kafkaUp} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
