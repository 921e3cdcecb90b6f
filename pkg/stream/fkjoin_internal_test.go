package stream

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestForeignKeyJoinDropsStaleAnswers pipes answers straight into the
// response topic, as the right side would send them when the left entry
// changed while its subscription was on its way: an answer made for
// another left value (its hash differs from the current value's) is
// dropped, one made for the current value is joined, and a deletion's
// answer (no hash) is joined only once the left entry is gone. A
// single-partition run never races like that, so the cross-check with
// Kafka Streams cannot cover it.
func TestForeignKeyJoinDropsStaleAnswers(t *testing.T) {
	b := NewBuilder()
	orders := TableSource(b, "orders", String(), Int64())
	customers := TableSource(b, "customers", String(), String())
	joined := JoinTablesOnForeignKey(orders, customers,
		func(_ string, v int64) (string, bool) { return "c" + strconv.FormatInt(v, 10), true },
		func(v int64, c string) string { return strconv.FormatInt(v, 10) + "@" + c },
		ForeignKeyJoined[string, string]{Name: "j", Materialized: Materialized[string, string]{ValueSerde: String()}})
	ToStreamWithTombstones(joined).To("out", String(), TombstoneSerde(String()))
	top, err := b.Build()
	require.NoError(t, err)
	r, err := NewLocalRunner(top, ApplicationID("fk"), StartTime(time.UnixMilli(0)))
	require.NoError(t, err)
	defer r.Close()

	pipe := func(topic, k string, v []byte, ts int64) {
		t.Helper()
		require.NoError(t, r.Pipe(topic, []byte(k), v, time.UnixMilli(ts), nil))
	}
	i64 := func(v int64) []byte { b, _ := Int64().Serialize(v); return b }
	answer := func(forValue *int64, customer string, ts int64) {
		t.Helper()
		resp := fkResponse{value: []byte(customer)}
		if forValue != nil {
			resp.hash = fkHash(i64(*forValue))
		}
		b, err := fkResponseSerde{}.Serialize(resp)
		require.NoError(t, err)
		pipe("fk-j-subscription-response-topic", "o1", b, ts)
	}
	// out returns the records written to "out" since the last call.
	out := func() []string {
		var s []string
		for _, rec := range r.Output("out") {
			v := "<nil>"
			if rec.Value != nil {
				v = string(rec.Value)
			}
			s = append(s, string(rec.Key)+"="+v+"@"+strconv.FormatInt(rec.Timestamp.UnixMilli(), 10))
		}
		return s
	}
	pipe("customers", "c1", []byte("ann"), 1)
	pipe("customers", "c2", []byte("bob"), 2)
	pipe("orders", "o1", i64(1), 10)
	pipe("orders", "o1", i64(2), 11)
	require.Equal(t, []string{"o1=1@ann@10", "o1=2@bob@11"}, out())

	one, two := int64(1), int64(2)
	answer(&one, "ann-again", 12) // made for o1=1: stale
	answer(nil, "nobody", 13)     // made for a deletion of o1: stale
	require.Empty(t, out(), "stale answers must be dropped")
	answer(&two, "bob-again", 14)
	require.Equal(t, []string{"o1=2@bob-again@14"}, out())

	pipe("orders", "o1", nil, 15)
	require.Equal(t, []string{"o1=<nil>@15"}, out())
	answer(&two, "bob-late", 16) // o1 is gone
	answer(nil, "", 17)          // a deletion's answer: the result is deleted again
	require.Equal(t, []string{"o1=<nil>@17"}, out())
}

// TestForeignKeyJoinWireFormats round-trips the subscription and the
// answer, and rejects corrupt ones with a SerdeError.
func TestForeignKeyJoinWireFormats(t *testing.T) {
	subs := []fkSubscription{
		{instr: fkPropagateOnlyIfFK, hash: fkHash([]byte("v")), hasFK: true, partition: 7, pk: []byte("key")},
		{instr: fkDeleteAndPropagate, hasFK: true, partition: 0, pk: []byte{}},
		{instr: fkPropagateNullIfNoFK, partition: 3, pk: []byte("k")},
	}
	for _, s := range subs {
		b, err := fkSubscriptionSerde{}.Serialize(s)
		require.NoError(t, err)
		got, err := fkSubscriptionSerde{}.Deserialize(b)
		require.NoError(t, err)
		require.Equal(t, s, got)
	}
	for _, r := range []fkResponse{{hash: fkHash(nil), value: []byte("x")}, {hash: fkHash(nil)}, {value: []byte{}}, {}} {
		b, err := fkResponseSerde{}.Serialize(r)
		require.NoError(t, err)
		got, err := fkResponseSerde{}.Deserialize(b)
		require.NoError(t, err)
		require.Equal(t, r, got)
	}
	var se *SerdeError
	for _, bad := range [][]byte{nil, {1}, {2, 0, 0, 0, 0, 0, 0}, {1, 9, 0, 0, 0, 0, 0}, {1, 0, 1, 0, 0, 0, 0, 1, 2}} {
		_, err := fkSubscriptionSerde{}.Deserialize(bad)
		require.ErrorAs(t, err, &se, "%v", bad)
	}
	for _, bad := range [][]byte{nil, {1}, {1, 4}, {1, 1, 5}} {
		_, err := fkResponseSerde{}.Deserialize(bad)
		require.ErrorAs(t, err, &se, "%v", bad)
	}
	require.Equal(t, []byte{0, 0, 0, 2, 'a', 'c'}, fkPrefixEnd([]byte{0, 0, 0, 2, 'a', 'b'}))
	require.Equal(t, []byte{0, 0, 1}, fkPrefixEnd([]byte{0, 0, 0, 0xff}))
	require.Nil(t, fkPrefixEnd([]byte{0xff, 0xff}))
}
