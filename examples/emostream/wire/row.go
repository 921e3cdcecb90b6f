package wire

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"

	"github.com/emostream/emostream/pkg/stream"
)

// Row is one result of an extra aggregation (package aggregation), the value
// of a record on its output topic (<output topic>-<aggregation name>, e.g.
// topic2-distinct-users). Every aggregation writes rows of this one shape,
// so the dashboard and other consumers can show any of them without knowing
// it:
//
//	{"aggregation":"top3","window_start":<ms>,"window_end":<ms>,"label":"🔥","value":42,"rank":1}
//
// Label says what the row is about (an emoji, a user...), Value is the
// figure, and Rank, when not 0, orders the rows of one window (1 first).
type Row struct {
	Aggregation string  `json:"aggregation"`
	WindowStart int64   `json:"window_start"`
	WindowEnd   int64   `json:"window_end"`
	Label       string  `json:"label"`
	Value       float64 `json:"value"`
	Rank        int     `json:"rank,omitempty"`
}

// Marshal encodes the row as its record value. It does not check the row:
// see [Row.Validate].
func (r Row) Marshal() ([]byte, error) { return json.Marshal(r) }

// Reason of a row value rejected by [DecodeRow].
const ReasonInvalidRow = "invalid row"

// aggregationName is what package aggregation accepts as a name.
var aggregationName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// Validate returns a *[DecodeError] when [DecodeRow] would reject the row.
func (r Row) Validate() error {
	var problem error
	switch {
	case !aggregationName.MatchString(r.Aggregation):
		problem = fmt.Errorf("aggregation %q is not a name of a-z, 0-9 and '-' (at most 40)", r.Aggregation)
	case r.WindowEnd <= r.WindowStart:
		problem = fmt.Errorf("window_end %d is not after window_start %d", r.WindowEnd, r.WindowStart)
	case r.Label == "" || len(r.Label) > 256:
		problem = fmt.Errorf("label must be 1 to 256 bytes, got %d", len(r.Label))
	case math.IsNaN(r.Value) || math.IsInf(r.Value, 0):
		problem = fmt.Errorf("value %v is not a number", r.Value)
	case r.Rank < 0:
		problem = fmt.Errorf("rank %d is negative", r.Rank)
	}
	if problem != nil {
		return &DecodeError{Reason: ReasonInvalidRow, Err: problem}
	}
	return nil
}

// DecodeRow reads a row record value: a JSON object with a valid
// aggregation name, window_end after window_start, a label of 1 to 256
// bytes, a finite value and a non-negative rank. A value that is not is a
// *[DecodeError].
func DecodeRow(b []byte) (Row, error) {
	b = trimJSONSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		return Row{}, &DecodeError{Reason: ReasonEmpty}
	case !json.Valid(b):
		var v any
		return Row{}, &DecodeError{Reason: ReasonInvalidJSON, Err: json.Unmarshal(b, &v)}
	case b[0] != '{':
		return Row{}, &DecodeError{Reason: ReasonNotObject}
	}
	var r Row
	if err := json.Unmarshal(b, &r); err != nil {
		return Row{}, &DecodeError{Reason: ReasonInvalidRow, Err: err}
	}
	if err := r.Validate(); err != nil {
		return Row{}, err
	}
	return r, nil
}

// RowSerde is the serde of the extra aggregations' output topics:
// [Row.Marshal] and [DecodeRow].
func RowSerde() stream.Serde[Row] {
	return stream.SerdeFuncs(Row.Marshal, DecodeRow)
}
