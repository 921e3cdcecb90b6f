package wire_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/wire"
)

func TestRowRoundTrip(t *testing.T) {
	r := wire.Row{Aggregation: "top3", WindowStart: 2000, WindowEnd: 4000, Label: "🔥", Value: 42, Rank: 1}
	b, err := r.Marshal()
	require.NoError(t, err)
	require.JSONEq(t, `{"aggregation":"top3","window_start":2000,"window_end":4000,"label":"🔥","value":42,"rank":1}`, string(b))
	got, err := wire.DecodeRow(b)
	require.NoError(t, err)
	require.Equal(t, r, got)

	r.Rank, r.Value = 0, 2.5
	b, err = r.Marshal()
	require.NoError(t, err)
	require.NotContains(t, string(b), "rank", "rank 0 is left out")
	got, err = wire.RowSerde().Deserialize(b)
	require.NoError(t, err)
	require.Equal(t, r, got)
}

func TestDecodeRowRejects(t *testing.T) {
	for _, tc := range []struct {
		name, value, reason, msg string
	}{
		{"empty", ``, wire.ReasonEmpty, ""},
		{"null", `null`, wire.ReasonEmpty, ""},
		{"not json", `{"a"`, wire.ReasonInvalidJSON, ""},
		{"array", `[]`, wire.ReasonNotObject, ""},
		{"wrong type", `{"aggregation":"x","window_start":"0"}`, wire.ReasonInvalidRow, "window_start"},
		{"bad name", `{"aggregation":"Top 3","window_start":0,"window_end":1,"label":"x","value":1}`, wire.ReasonInvalidRow, "aggregation"},
		{"window", `{"aggregation":"a","window_start":5,"window_end":5,"label":"x","value":1}`, wire.ReasonInvalidRow, "window_end"},
		{"no label", `{"aggregation":"a","window_start":0,"window_end":1,"value":1}`, wire.ReasonInvalidRow, "label"},
		{"negative rank", `{"aggregation":"a","window_start":0,"window_end":1,"label":"x","value":1,"rank":-1}`, wire.ReasonInvalidRow, "rank"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wire.DecodeRow([]byte(tc.value))
			var de *wire.DecodeError
			require.ErrorAs(t, err, &de)
			require.Equal(t, tc.reason, de.Reason)
			require.ErrorContains(t, err, tc.msg)
		})
	}
	require.Error(t, wire.Row{Aggregation: "a", WindowEnd: 1, Label: "x", Value: math.NaN()}.Validate())
	require.NoError(t, wire.Row{Aggregation: "a", WindowEnd: 1, Label: "x", Value: -1.5}.Validate())
}
