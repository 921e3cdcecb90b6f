package dashboard_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/dashboard"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// panelsStarted is a log handler that closes started when the server logs
// that it reads the panels' topics: rows written after that are live (sent
// as events), rows written before it are its backfill.
type panelsStarted struct {
	once    *sync.Once
	started chan struct{}
}

func newPanelsStarted() panelsStarted {
	return panelsStarted{once: &sync.Once{}, started: make(chan struct{})}
}

func (h panelsStarted) Enabled(context.Context, slog.Level) bool { return true }
func (h panelsStarted) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "reading aggregation rows" && r.Level == slog.LevelInfo {
		h.once.Do(func() { close(h.started) })
	}
	return nil
}
func (h panelsStarted) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h panelsStarted) WithGroup(string) slog.Handler      { return h }

// wait waits until the panels are read.
func (h panelsStarted) wait(t *testing.T) {
	t.Helper()
	select {
	case <-h.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the dashboard never started reading the panels' topics")
	}
}

func rowKV(key string, rs ...wire.Row) []kafkatest.KV {
	var kvs []kafkatest.KV
	for _, r := range rs {
		b, _ := r.Marshal()
		kvs = append(kvs, kafkatest.KV{Key: key, Value: string(b)})
	}
	return kvs
}

type panelView struct {
	dashboard.Panel
	Rows []wire.Row `json:"rows"`
}

// TestPanels: rows on the panels' topics are served by /api/aggregations
// (backfill and live, newest window first, by rank, duplicates once) and
// streamed live as `event: aggregation`; an invalid record is skipped.
func TestPanels(t *testing.T) {
	brokers := kafkatest.EmbeddedBrokers(t)
	results := kafkatest.UniqueName(t, "topic2")
	top := kafkatest.UniqueName(t, "top3")
	users := kafkatest.UniqueName(t, "users")
	for _, tp := range []string{results, top, users} {
		kafkatest.CreateTopic(t, brokers, tp, 2)
	}
	const w0 = int64(1_795_694_400_000)
	row := func(name string, start int64, label string, v float64, rank int) wire.Row {
		return wire.Row{Aggregation: name, WindowStart: start, WindowEnd: start + 2000, Label: label, Value: v, Rank: rank}
	}
	// Backfill: one window of top3, written before the dashboard starts.
	kafkatest.ProduceStrings(t, brokers, top, rowKV("w0", row("top3", w0, "🔥", 9, 1), row("top3", w0, "👍🏽", 4, 2)))
	panels := newPanelsStarted()
	_, base := startDashboard(t, dashboard.Config{Brokers: brokers, Topic: results, Logger: slog.New(panels), Panels: []dashboard.Panel{
		{Name: "top3", Title: "Top 3 emojis per window", Topic: top},
		{Name: "distinct-users", Title: "Distinct users per emoji", Topic: users},
	}})
	events := openEvents(t, base)
	// Ready says the output topic is read; the panels' session starts on
	// its own, and a row written before it is backfill, not an event.
	panels.wait(t)

	kafkatest.ProduceStrings(t, brokers, users, append(rowKV("🔥", row("distinct-users", w0+2000, "🔥", 3, 0)),
		kafkatest.KV{Key: "x", Value: `{"aggregation":"distinct-users","window_start":5,"window_end":1,"label":"x","value":1}`}))
	kafkatest.ProduceStrings(t, brokers, top, rowKV("w0", row("top3", w0, "🔥", 9, 1))) // a repeat
	ev, data := events.next(t)
	require.Equal(t, "aggregation", ev)
	require.JSONEq(t, `{"aggregation":"distinct-users","window_start":1795694402000,"window_end":1795694404000,"label":"🔥","value":3}`, data)

	var got []panelView
	require.Eventually(t, func() bool {
		got = nil
		require.Equal(t, 200, getJSON(t, base+"/api/aggregations", &got))
		return len(got) == 2 && len(got[0].Rows) == 2 && len(got[1].Rows) == 1
	}, 10*time.Second, 50*time.Millisecond)
	want := []panelView{
		{Panel: dashboard.Panel{Name: "top3", Title: "Top 3 emojis per window", Topic: top},
			Rows: []wire.Row{row("top3", w0, "🔥", 9, 1), row("top3", w0, "👍🏽", 4, 2)}},
		{Panel: dashboard.Panel{Name: "distinct-users", Title: "Distinct users per emoji", Topic: users},
			Rows: []wire.Row{row("distinct-users", w0+2000, "🔥", 3, 0)}},
	}
	wantJSON, _ := json.Marshal(want)
	gotJSON, _ := json.Marshal(got)
	require.JSONEq(t, string(wantJSON), string(gotJSON))
}

func TestPanelsConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		panels []dashboard.Panel
		err    string
	}{
		{"no topic", []dashboard.Panel{{Name: "a"}}, "needs a name and a topic"},
		{"same name", []dashboard.Panel{{Name: "a", Topic: "x"}, {Name: "a", Topic: "y"}}, `two panels named "a"`},
		{"results topic", []dashboard.Panel{{Name: "a", Topic: "topic2"}}, `reads the results topic "topic2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dashboard.New(dashboard.Config{Brokers: []string{"127.0.0.1:1"}, Panels: tc.panels})
			require.ErrorContains(t, err, tc.err)
		})
	}
}

// TestPanelsBrokerRestart: the panels' consumer survives an in-process
// restart of the embedded broker without its data, like the results'
// (TestBrokerRestart): its offsets are beyond the new, empty logs, it resets
// them and the viewers get the rows written after the restart.
func TestPanelsBrokerRestart(t *testing.T) {
	b := kafkatest.StartRestartable(t)
	brokers := b.Addrs()
	results, top := kafkatest.UniqueName(t, "topic2"), kafkatest.UniqueName(t, "top3")
	create := func() {
		kafkatest.CreateTopic(t, brokers, results, 2)
		kafkatest.CreateTopic(t, brokers, top, 2)
	}
	create()
	panels := newPanelsStarted()
	_, base := startDashboard(t, dashboard.Config{Brokers: brokers, Topic: results, Logger: slog.New(panels),
		Panels: []dashboard.Panel{{Name: "top3", Title: "Top 3", Topic: top}}})
	events := openEvents(t, base)
	panels.wait(t)

	now := time.Now().UnixMilli() / 2000 * 2000
	row := func(start int64, label string, v float64) wire.Row {
		return wire.Row{Aggregation: "top3", WindowStart: start, WindowEnd: start + 2000, Label: label, Value: v, Rank: 1}
	}
	var before []wire.Row
	for i := range 20 {
		before = append(before, row(now-int64(i)*2000, "🔥", float64(i+1)))
	}
	kafkatest.ProduceStrings(t, brokers, top, rowKV("k", before...))
	for range before {
		name, _ := events.next(t)
		require.Equal(t, "aggregation", name)
	}

	b.Stop()
	time.Sleep(2 * time.Second) // the sessions notice and retry
	b.Start()
	create()
	kafkatest.ProduceStrings(t, brokers, top, rowKV("k", row(now+2000, "🎉", 9)))
	// Without the reset the consumer would wait at its old offsets, beyond
	// the new log's end, and the row would never come.
	arrived := make(chan wire.Row, 1)
	go func() {
		// Reads the stream itself (events.next fails the test, which a
		// goroutine must not do): "data: " lines of rows.
		for {
			line, err := events.r.ReadString('\n')
			if err != nil {
				return
			}
			data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: ")
			if r, err := wire.DecodeRow([]byte(data)); ok && err == nil && r.WindowStart == now+2000 {
				arrived <- r
				return
			}
		}
	}()
	select {
	case r := <-arrived:
		require.Equal(t, row(now+2000, "🎉", 9), r)
	case <-time.After(30 * time.Second):
		t.Fatal("no row after the broker restart")
	}
	var got []panelView
	require.Equal(t, 200, getJSON(t, base+"/api/aggregations", &got))
	require.Equal(t, row(now+2000, "🎉", 9), got[0].Rows[0], "newest window first")
}
