package dashboard

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emostream/emostream/examples/emostream/internal/httpx"
	"github.com/emostream/emostream/examples/emostream/wire"
)

// Panel is an extra aggregation (package aggregation) the dashboard shows
// in a generic panel: the rows ([wire.Row]) of its newest windows, read
// from Topic. The page lists the panels of Config.Panels in order.
type Panel struct {
	// Name is the aggregation's name, e.g. "top3".
	Name string `json:"name"`
	// Title is the panel's heading, e.g. "Top 3 emojis per window".
	Title string `json:"title"`
	// Topic is the aggregation's output topic, e.g. "topic2-top3".
	Topic string `json:"topic"`
}

// panelWindows is how many windows of each panel the server keeps for
// /api/aggregations.
const panelWindows = 30

// panelSet keeps the newest rows of every panel and reads their topics.
type panelSet struct {
	list []Panel
	met  panelMetrics

	mu   sync.Mutex
	rows map[string]map[int64][]wire.Row // panel -> window start -> rows
	next map[topicPartition]int64        // next offset to read
	// started is set once a session read its backfill; only the
	// consuming goroutine uses it.
	started bool
}

type topicPartition struct {
	topic string
	p     int32
}

type panelMetrics struct {
	rows    *prometheus.CounterVec
	invalid *prometheus.CounterVec
}

func newPanelSet(cfg Config) (*panelSet, error) {
	ps := &panelSet{list: cfg.Panels, rows: map[string]map[int64][]wire.Row{}, next: map[topicPartition]int64{}}
	names, topics := map[string]bool{}, map[string]bool{}
	for _, p := range cfg.Panels {
		switch {
		case p.Name == "" || p.Topic == "":
			return nil, fmt.Errorf("dashboard: invalid config: panel %+v needs a name and a topic", p)
		case names[p.Name] || topics[p.Topic]:
			return nil, fmt.Errorf("dashboard: invalid config: two panels named %q or reading %q", p.Name, p.Topic)
		case p.Topic == cfg.Topic:
			return nil, fmt.Errorf("dashboard: invalid config: panel %q reads the results topic %q", p.Name, p.Topic)
		}
		names[p.Name], topics[p.Topic] = true, true
		ps.rows[p.Name] = map[int64][]wire.Row{}
	}
	ps.met = panelMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emostream_dashboard_aggregation_rows_total",
			Help: "Rows read from the extra aggregations' topics, by aggregation.",
		}, []string{"aggregation"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "emostream_dashboard_invalid_aggregation_rows_total",
			Help: "Records of the extra aggregations' topics that are not valid rows (skipped), by aggregation.",
		}, []string{"aggregation"}),
	}
	for _, c := range []prometheus.Collector{ps.met.rows, ps.met.invalid} {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("dashboard: registering metrics: %w", err)
		}
	}
	return ps, nil
}

// add keeps r (of panel name) and reports whether it is new: a row is
// identified by its window and label, and a window older than the newest
// panelWindows is forgotten.
func (ps *panelSet) add(name string, r wire.Row) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	wins := ps.rows[name]
	rows, known := wins[r.WindowStart]
	for _, old := range rows {
		if old.WindowEnd == r.WindowEnd && old.Label == r.Label {
			return false
		}
	}
	if !known && len(wins) >= panelWindows {
		oldest := r.WindowStart
		for start := range wins {
			oldest = min(oldest, start)
		}
		if oldest == r.WindowStart {
			return false // older than every window kept
		}
		delete(wins, oldest)
	}
	wins[r.WindowStart] = append(rows, r)
	return true
}

// panelView is a panel with its rows, as /api/aggregations answers.
type panelView struct {
	Panel
	// Rows are the newest windows' rows, newest window first; within a
	// window by rank, then the larger value, then label.
	Rows []wire.Row `json:"rows"`
}

func (ps *panelSet) snapshot() []panelView {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]panelView, 0, len(ps.list))
	for _, p := range ps.list {
		v := panelView{Panel: p, Rows: []wire.Row{}}
		for _, rows := range ps.rows[p.Name] {
			v.Rows = append(v.Rows, rows...)
		}
		slices.SortFunc(v.Rows, func(a, b wire.Row) int {
			return cmp.Or(cmp.Compare(b.WindowStart, a.WindowStart), cmp.Compare(a.Rank, b.Rank),
				cmp.Compare(b.Value, a.Value), cmp.Compare(a.Label, b.Label))
		})
		out = append(out, v)
	}
	return out
}

func (s *Server) serveAggregations(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, s.panels.snapshot())
}

// receivePanel handles one record of panel p's topic: the row is kept and,
// unless it is backfill, sent to the viewers as `event: aggregation` with
// the row as data (its aggregation set to the panel's name).
func (s *Server) receivePanel(p Panel, value []byte, backfill bool) {
	r, err := wire.DecodeRow(value)
	if err != nil {
		s.panels.met.invalid.WithLabelValues(p.Name).Inc()
		s.log.Debug("skipping invalid row", "aggregation", p.Name, "err", err)
		return
	}
	s.panels.met.rows.WithLabelValues(p.Name).Inc()
	r.Aggregation = p.Name
	if !s.panels.add(p.Name, r) || backfill {
		return
	}
	data, err := json.Marshal(r)
	if err != nil {
		return // DecodeRow accepted it, so it encodes
	}
	frame := make([]byte, 0, len(data)+32)
	frame = append(frame, "event: aggregation\ndata: "...)
	frame = append(frame, data...)
	frame = append(frame, "\n\n"...)
	s.hub.broadcast(frame)
}

// runPanels reads the panels' topics until ctx ends, in sessions retried
// with backoff like the results' (see consume): Kafka may be down, a topic
// not created yet, or a broker restarted empty.
func (s *Server) runPanels(ctx context.Context) {
	if len(s.panels.list) == 0 {
		return
	}
	s.retrySessions(ctx, "reading aggregation rows failed; retrying", s.panelSession, func(bool, error) {})
}

// panelSession reads every panel topic from where the last session
// stopped (the first: Config.Backfill records before the end of each
// partition) until ctx ends or a partition cannot go on.
func (s *Server) panelSession(ctx context.Context) error {
	k, ctx, err := s.openSession(ctx)
	if err != nil {
		return err
	}
	defer k.close()
	client := k.client
	history := !s.panels.started
	newest := map[topicPartition]int64{}
	for _, panel := range s.panels.list {
		parts, err := partitions(client, panel.Topic)
		if err != nil {
			return err
		}
		for _, p := range parts {
			tp := topicPartition{panel.Topic, p}
			start, hwm, err := s.panelStart(client, tp)
			if err != nil {
				return err
			}
			newest[tp] = hwm
			err = k.read(tp.topic, p, start, func(m *sarama.ConsumerMessage) {
				s.receivePanel(panel, m.Value, history && m.Offset < hwm)
				s.panels.mu.Lock()
				s.panels.next[tp] = m.Offset + 1
				s.panels.mu.Unlock()
			}, func(err *sarama.ConsumerError) {
				s.log.Warn("reading aggregation rows", "topic", tp.topic, "partition", err.Partition, "err", err.Err)
			})
			if err != nil {
				return err
			}
		}
	}
	s.panels.started = true
	s.log.Info("reading aggregation rows", "panels", len(s.panels.list))
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return sessionEnd(ctx)
		case <-t.C:
		}
		// A log whose end went back was recreated (an in-memory broker
		// restarted): start a new session, which resets the partition.
		for tp, before := range newest {
			hwm, err := client.GetOffset(tp.topic, tp.p, sarama.OffsetNewest)
			if err != nil {
				continue // the partition consumer reports and retries
			}
			if hwm < before {
				return fmt.Errorf("%w: the end offset of %s/%d went back from %d to %d", errSession, tp.topic, tp.p, before, hwm)
			}
			newest[tp] = hwm
		}
	}
}

// panelStart is where a session reads tp from, and tp's end offset: the
// next offset not read yet, or, the first time or when that offset is no
// longer in the log, max(oldest, end - Backfill).
func (s *Server) panelStart(client sarama.Client, tp topicPartition) (start, newest int64, err error) {
	if newest, err = client.GetOffset(tp.topic, tp.p, sarama.OffsetNewest); err != nil {
		return 0, 0, fmt.Errorf("dashboard: kafka: end offset of %s/%d: %w", tp.topic, tp.p, err)
	}
	oldest, err := client.GetOffset(tp.topic, tp.p, sarama.OffsetOldest)
	if err != nil {
		return 0, 0, fmt.Errorf("dashboard: kafka: start offset of %s/%d: %w", tp.topic, tp.p, err)
	}
	s.panels.mu.Lock()
	next, known := s.panels.next[tp]
	s.panels.mu.Unlock()
	if known && next >= oldest && next <= newest {
		return next, newest, nil
	}
	return max(oldest, newest-int64(s.cfg.Backfill)), newest, nil
}
