package harness

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A report embedding RunInfo has date, broker and machine at its top level,
// first, as the reports had before RunInfo.
func TestRunInfoEmbeddedIsFlat(t *testing.T) {
	type report struct {
		RunInfo
		Other int `json:"other"`
	}
	r := report{RunInfo: RunInfo{Date: "2026-01-02T03:04:05Z", Broker: "embedded", Machine: Machine{Cores: 2}}, Other: 7}
	raw, err := json.Marshal(r)
	require.NoError(t, err)
	m, err := json.Marshal(Machine{Cores: 2})
	require.NoError(t, err)
	assert.JSONEq(t, `{"date":"2026-01-02T03:04:05Z","broker":"embedded","machine":`+string(m)+`,"other":7}`, string(raw))
	assert.Regexp(t, `^\{"date":.*"broker":.*"machine":.*"other":7\}$`, string(raw))
}

func TestNewRunInfo(t *testing.T) {
	ri := NewRunInfo("Kafka 127.0.0.1:9092")
	assert.Equal(t, "Kafka 127.0.0.1:9092", ri.Broker)
	assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, ri.Date)
	assert.Positive(t, ri.Machine.Cores)
}
