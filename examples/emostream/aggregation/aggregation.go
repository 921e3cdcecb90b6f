package aggregation

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/window"
)

// Aggregation is an emoji aggregation that EmoStream runs next to the
// contract's count. Implementations must be safe to Build more than once
// (each aggregate process, and each test, builds its own topology).
type Aggregation interface {
	// Name selects the aggregation in --aggregations and names its output
	// topic (<output topic>-<name>) and, through Input.WindowOpts, its
	// stores: 1 to 40 characters of a-z, 0-9 and '-', starting with a
	// letter or digit; not "count" or "all".
	Name() string
	// Title is a short description, the heading of its dashboard panel.
	Title() string
	// Build adds the aggregation's processors to in's topology and returns
	// its results. EmoStream sets each row's Aggregation to Name and writes
	// the rows, keyed as returned, to the aggregation's output topic.
	Build(in Input) (*stream.Stream[string, wire.Row], error)
}

// Count is the name of the contract's count (topic2) in --aggregations.
const Count = "count"

// All in --aggregations selects the count and every available aggregation.
const All = "all"

// Input is what an aggregation is built on. EmoStream fills it in.
type Input struct {
	// Name is the aggregation's name.
	Name string
	// Events is the input topic (topic1): keyed by emoji_type, timestamped
	// with the event time. Malformed records never get here (they went to
	// the dead-letter topic).
	Events *stream.Stream[string, wire.Event]
	// Counts is the contract's count before it becomes topic2 records: one
	// final count per (window, emoji) with count > 0, when the window
	// closes, timestamped with the window's largest event time (inside the
	// window), so a second windowed aggregation puts it back in its window.
	// After a crash a count may come again, always with the same value
	// (not under exactly-once).
	Counts *stream.Stream[window.Windowed[string], int64]
	// Windows are the count's windows: tumbling, --window wide, --grace
	// grace.
	Windows window.TimeWindows
	// WallClockClose is true unless the aggregator runs on stream time only
	// (backfills): windows also close when the wall clock passes
	// end + grace.
	WallClockClose bool
	// CountLag is how long after window_end + grace a count result can
	// take, in normal operation, to reach an aggregation of Counts through
	// a repartition topic: 1 s, plus the commit interval under
	// exactly-once (records are readable once their transaction commits).
	CountLag time.Duration
}

// WindowOpts are the window options the count uses, for an aggregation of
// Events or Counts: stores named after the aggregation (window.Named(Name);
// pass window.Named again for a second windowed step), one final result
// per window (window.OnWindowClose), closed by the wall clock too unless
// WallClockClose is off, and late records dropped and counted — the count
// already writes each late topic1 record to the dead-letter topic. Options
// in extra come last and win.
func (in Input) WindowOpts(extra ...window.Opt) []window.Opt {
	opts := []window.Opt{
		window.Named(in.Name),
		window.Emit(window.OnWindowClose),
		window.WallClockClose(in.WallClockClose),
		window.CloseInterval(20 * time.Millisecond),
		window.DropLateRecords(),
	}
	return append(opts, extra...)
}

// RowOf is the row of window w with label and value; EmoStream fills in
// the aggregation's name.
func RowOf[K any](w window.Windowed[K], label string, value float64) wire.Row {
	return wire.Row{WindowStart: w.Start.UnixMilli(), WindowEnd: w.End.UnixMilli(), Label: label, Value: value}
}

// Topic is the output topic of aggregation name: <output>-<name>, e.g.
// topic2-distinct-users.
func Topic(output, name string) string { return output + "-" + name }

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// CheckName reports whether name can name an aggregation.
func CheckName(name string) error {
	switch {
	case !validName.MatchString(name):
		return fmt.Errorf("%w: name %q: want 1 to 40 characters of a-z, 0-9 and '-', starting with a letter or digit", ErrInvalid, name)
	case name == Count || name == All:
		return fmt.Errorf("%w: name %q is reserved", ErrInvalid, name)
	}
	return nil
}

// Builtin returns the aggregations EmoStream ships: DistinctUsers and
// TopK(3).
func Builtin() []Aggregation { return []Aggregation{DistinctUsers(), TopK(3)} }

// Select resolves an --aggregations list (names separated by commas) against
// the available aggregations and returns the selected ones in the order
// given, without the count. The list must name "count" (topic2, the
// contract's output, is always written); "all" stands for the count and
// every available aggregation. Unknown or repeated names are errors.
func Select(list string, available []Aggregation) ([]Aggregation, error) {
	byName := map[string]Aggregation{}
	var names []string
	for _, a := range available {
		n := a.Name()
		if err := CheckName(n); err != nil {
			return nil, err
		}
		if byName[n] != nil {
			return nil, fmt.Errorf("%w: two aggregations named %q", ErrInvalid, n)
		}
		byName[n] = a
		names = append(names, n)
	}
	if strings.TrimSpace(list) == All {
		return slices.Clone(available), nil
	}
	var out []Aggregation
	seen := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
			return nil, fmt.Errorf("%w: empty name in %q", ErrInvalid, list)
		case seen[n]:
			return nil, fmt.Errorf("%w: %q given twice", ErrInvalid, n)
		case n == All:
			return nil, fmt.Errorf("%w: %q stands alone", ErrInvalid, All)
		case n != Count && byName[n] == nil:
			return nil, fmt.Errorf("%w: unknown aggregation %q (want %s, or %s)", ErrInvalid, n, strings.Join(append([]string{Count}, names...), ", "), All)
		}
		seen[n] = true
		if n != Count {
			out = append(out, byName[n])
		}
	}
	if !seen[Count] {
		return nil, fmt.Errorf("%w: %q must include %q: topic2, the contract's output, is always written", ErrInvalid, list, Count)
	}
	return out, nil
}

// build calls a.Build, turning a panic into an error: a plug-in's bug must
// not crash the process that also runs the count.
func build(a Aggregation, in Input) (rows *stream.Stream[string, wire.Row], err error) {
	defer func() {
		if p := recover(); p != nil {
			rows, err = nil, fmt.Errorf("%w: Build panicked: %v", ErrInvalid, p)
		}
	}()
	return a.Build(in)
}

// Attach builds a with in and writes its rows, stamped with a's name, to
// topic. Rows that wire.DecodeRow would reject are left out.
func Attach(a Aggregation, in Input, topic string) error {
	name := a.Name()
	if err := CheckName(name); err != nil {
		return err
	}
	in.Name = name
	rows, err := build(a, in)
	if err != nil {
		return fmt.Errorf("aggregation %s: %w", name, err)
	}
	if rows == nil {
		return fmt.Errorf("%w: aggregation %s built no rows", ErrInvalid, name)
	}
	stamped := stream.MapValues(rows, func(_ string, r wire.Row) wire.Row {
		r.Aggregation = name
		return r
	})
	// A row its readers would reject (an empty label, a NaN) is a bug of
	// the aggregation; it is left out rather than failing the task, which
	// would stop the count too.
	stamped.Filter(func(_ string, r wire.Row) bool { return r.Validate() == nil }).
		To(topic, stream.String(), wire.RowSerde())
	return nil
}
