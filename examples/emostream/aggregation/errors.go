package aggregation

import "errors"

// ErrInvalid reports an aggregation, or an --aggregations list, that cannot
// be used; the error wrapping it says why.
var ErrInvalid = errors.New("aggregation: invalid")
