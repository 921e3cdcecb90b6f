package wire

import "github.com/emostream/emostream/pkg/stream"

// EventSerde is the topic1 value serde for topologies: it encodes with
// [Event.Marshal] and decodes with [DecodeEvent], so a bad record surfaces
// as a *[DecodeError].
func EventSerde() stream.Serde[Event] {
	return stream.SerdeFuncs(Event.Marshal, DecodeEvent)
}

// ResultSerde is the topic2 value serde: [Result.Marshal] and
// [DecodeResult].
func ResultSerde() stream.Serde[Result] {
	return stream.SerdeFuncs(Result.Marshal, DecodeResult)
}
