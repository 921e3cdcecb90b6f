package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestEndToEndAggregations runs the binary with every aggregation
// (--aggregations count,distinct-users,top3), POSTs known emojis of known
// users into one window and requires exactly the expected records on
// topic2, topic2-distinct-users and topic2-top3, on time, and the rows on
// the dashboard (/api/aggregations). With --exactly-once the counts become
// readable only when their transaction commits, so top3 waits a commit
// interval longer.
func TestEndToEndAggregations(t *testing.T) {
	bin := buildEmostream(t)
	for _, tc := range []struct {
		name, backend string
		exactlyOnce   bool
	}{{"embedded", "embedded", false}, {"real", "real", false}, {"real-exactly-once", "real", true}} {
		t.Run(tc.name, func(t *testing.T) {
			_, out, _, brokers, args := runArgs(t, tc.backend)
			args = append(args, "--partitions", "3", "--aggregations", "count,distinct-users,top3")
			topLag := int64(1000) // Input.CountLag
			if tc.exactlyOnce {
				args = append(args, "--exactly-once")
				topLag += 1000 // the aggregator's commit interval
			}
			base, _ := startEmostream(t, bin, args)

			ws := (time.Now().Add(4*time.Second).UnixMilli()/2000)*2000 + 2000
			var batch []string
			add := func(user, emoji string, offset int64) {
				batch = append(batch, fmt.Sprintf(`{"user_id":%q,"emoji_type":%q,"timestamp":%d}`, user, emoji, ws+offset))
			}
			// 🔥 5 from 3 users, 👍🏽 4 from 4 users, 🇮🇳 4 from 1 user,
			// 😂 1; the next window gets one ❤️.
			for i, u := range []string{"a", "b", "a", "c", "a"} {
				add(u, "🔥", int64(10*i))
			}
			for i, u := range []string{"a", "b", "c", "d"} {
				add(u, "👍🏽", int64(100+10*i))
			}
			for i := range 4 {
				add("z", "🇮🇳", int64(1990+i))
			}
			add("y", "😂", 1500)
			add("x", "❤️", 2100)
			resp, err := http.Post(base+"/api", "application/json", strings.NewReader("["+strings.Join(batch, ",")+"]"))
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusAccepted, resp.StatusCode)

			row := func(name, label string, v float64, rank int) wire.Row {
				return wire.Row{Aggregation: name, WindowStart: ws, WindowEnd: ws + 2000, Label: label, Value: v, Rank: rank}
			}
			// topic2 as the contract says, unchanged by the extras.
			msgs := kafkatest.ConsumeN(t, brokers, out, 4, 30*time.Second)
			if !tc.exactlyOnce { // transactions add up to a commit interval
				require.WithinDuration(t, time.UnixMilli(ws+2500), time.Now(), time.Second, "results late")
			}
			counts := map[string]int64{}
			for _, m := range msgs {
				r, err := wire.DecodeResult([]byte(m.Value))
				require.NoError(t, err)
				require.Equal(t, ws, r.WindowStart)
				counts[r.EmojiType] = r.Count
			}
			require.Equal(t, map[string]int64{"🔥": 5, "👍🏽": 4, "🇮🇳": 4, "😂": 1}, counts)

			users := decodeRows(t, kafkatest.ConsumeN(t, brokers, out+"-distinct-users", 4, 30*time.Second), true)
			require.Equal(t, decodeRowsSorted([]wire.Row{
				row("distinct-users", "🔥", 3, 0), row("distinct-users", "👍🏽", 4, 0),
				row("distinct-users", "🇮🇳", 1, 0), row("distinct-users", "😂", 1, 0),
			}), users)

			top := kafkatest.ConsumeN(t, brokers, out+"-top3", 3, 30*time.Second)
			// window_end + grace + the counts' lag, within a second; with
			// transactions the rows are readable when top3's own commit
			// follows (up to a commit interval later).
			if tc.exactlyOnce {
				require.WithinDuration(t, time.UnixMilli(ws+2500+topLag+1000), time.Now(), 1500*time.Millisecond, "top3 on time")
			} else {
				require.WithinDuration(t, time.UnixMilli(ws+2500+topLag), time.Now(), time.Second, "top3 on time")
			}
			for _, m := range top {
				require.Equal(t, fmt.Sprint(ws), m.Key, "keyed by window start")
			}
			require.Equal(t, []wire.Row{
				row("top3", "🔥", 5, 1), row("top3", "🇮🇳", 4, 2), row("top3", "👍🏽", 4, 3), // ties by emoji bytes
			}, decodeRows(t, top, false), "in rank order: one window's rows share a key and a partition")

			// The dashboard shows both.
			type panel struct {
				Name string
				Rows []wire.Row
			}
			var panels []panel
			ok := assert.Eventually(t, func() bool {
				res, err := http.Get(base + "/api/aggregations")
				if err != nil {
					return false
				}
				defer res.Body.Close()
				panels = nil
				if json.NewDecoder(res.Body).Decode(&panels) != nil || len(panels) != 2 {
					return false
				}
				for i := range panels { // the next window's rows may be there too
					panels[i].Rows = slices.DeleteFunc(panels[i].Rows, func(r wire.Row) bool { return r.WindowStart != ws })
				}
				return len(panels[0].Rows) == 4 && len(panels[1].Rows) == 3
			}, 10*time.Second, 100*time.Millisecond)
			require.True(t, ok, "dashboard panels: %+v", panels)
			require.Equal(t, "distinct-users", panels[0].Name)
			require.Equal(t, "top3", panels[1].Name)
			require.Equal(t, decodeRowsSorted(users), decodeRowsSorted(panels[0].Rows))
			require.Equal(t, decodeRows(t, top, false), panels[1].Rows, "by rank")
		})
	}
}

// decodeRows decodes row records, sorted by label when sorted is set.
func decodeRows(t *testing.T, msgs []kafkatest.Message, sorted bool) []wire.Row {
	t.Helper()
	var rows []wire.Row
	for _, m := range msgs {
		r, err := wire.DecodeRow([]byte(m.Value))
		require.NoError(t, err)
		rows = append(rows, r)
	}
	if sorted {
		rows = decodeRowsSorted(rows)
	}
	return rows
}

func decodeRowsSorted(rows []wire.Row) []wire.Row {
	out := append([]wire.Row(nil), rows...)
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out
}
