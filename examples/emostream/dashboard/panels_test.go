package dashboard_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/dashboard"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

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
	_, base := startDashboard(t, dashboard.Config{Brokers: brokers, Topic: results, Panels: []dashboard.Panel{
		{Name: "top3", Title: "Top 3 emojis per window", Topic: top},
		{Name: "distinct-users", Title: "Distinct users per emoji", Topic: users},
	}})
	events := openEvents(t, base)

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
