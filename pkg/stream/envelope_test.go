package stream

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzEnvelopeRewrite checks the allocation-free envelope path Update uses
// (scanEnvelope, rewriteEnvelope) against the plain decode/set/encode one.
func FuzzEnvelopeRewrite(f *testing.F) {
	two := envelope{positions: []storedPosition{{originID("in/0"), 7, 1}, {originID("x/1>rep"), 1 << 40, 3 << 16}}, value: []byte{0, 1}}.encode()
	old := encodeV1([]v1Position{{"in/0", 7, 1}, {"x/1>rep", 1 << 40, 3 << 16}}, []byte{0, 1})
	f.Add(old, "in/0", int64(7), uint64(1), []byte("v"))
	f.Add(old, "x/1>rep", int64(1<<40+1), uint64(0), []byte("v"))
	f.Add(two, "in/0", int64(7), uint64(1), []byte("v"))
	f.Add(two, "in/0", int64(8), uint64(1), []byte("v"))
	f.Add(two, "in/0", int64(7), uint64(0), []byte{})
	f.Add(two, "", int64(0), uint64(0), []byte("p"))
	f.Add(envelope{value: []byte("v")}.encode(), "in/3", int64(1), uint64(1), []byte("w"))
	// One position, of the writer's origin (appendEnvelope's fast path),
	// and of another origin.
	one := envelope{positions: []storedPosition{{originID("in/0"), 7, 1}}, value: []byte{0, 1}}.encode()
	f.Add(one, "in/0", int64(9), uint64(0), []byte("v"))
	f.Add(one, "in/0", int64(1<<40), uint64(1<<20), []byte{})
	f.Add(one, "in/1", int64(9), uint64(0), []byte("v"))
	f.Add(one[:11], "in/0", int64(9), uint64(0), []byte("v"))
	f.Add([]byte{1, 200, 1}, "in/0", int64(1), uint64(1), []byte("w"))
	f.Fuzz(func(t *testing.T, raw []byte, origin string, off int64, sub uint64, value []byte) {
		p := pos(origin, off, sub)
		e, derr := decodeEnvelope(raw)
		v, applied, serr := scanEnvelope(raw, p)
		if (derr == nil) != (serr == nil) {
			t.Fatalf("decodeEnvelope error %v, scanEnvelope error %v", derr, serr)
		}
		if derr != nil {
			return
		}
		origins := map[uint64]bool{}
		for _, q := range e.positions {
			if origins[q.id] {
				return // the encoder never writes an origin twice
			}
			origins[q.id] = true
		}
		if !bytes.Equal(v, e.value) || applied != (p.dedup() && e.applied(p)) {
			t.Fatalf("scanEnvelope(%x, %+v) = %x, %v; decode gives %x, applied %v", raw, p, v, applied, e.value, e.applied(p))
		}
		got, err := rewriteEnvelope(nil, raw, p, value)
		if err != nil {
			t.Fatal(err)
		}
		want := e
		want.positions = append([]storedPosition(nil), e.positions...)
		if p.dedup() {
			want.set(p)
		}
		g, err := decodeEnvelope(got)
		if err != nil {
			t.Fatalf("rewriteEnvelope wrote an undecodable envelope %x: %v", got, err)
		}
		if !bytes.Equal(g.value, value) || len(g.positions) != len(want.positions) {
			t.Fatalf("rewrite %+v -> %+v, want %+v", e, g, want)
		}
		for _, q := range want.positions {
			found := false
			for _, r := range g.positions {
				if r == q {
					found = true
				}
			}
			if !found {
				t.Fatalf("rewrite %+v -> %+v lost position %+v", e, g, q)
			}
		}
	})
}

// pos is the position of a write from origin.
func pos(origin string, offset int64, sub uint64) writePosition {
	return writePosition{origin: origin, id: originID(origin), offset: offset, sub: sub}
}

// v1Position is a position of a version 1 envelope, which names its origin.
type v1Position struct {
	origin string
	offset int64
	sub    uint64
}

// encodeV1 writes an envelope as versions before 2 did: each origin by name.
func encodeV1(positions []v1Position, value []byte) []byte {
	b := []byte{envelopeV1}
	b = binary.AppendUvarint(b, uint64(len(positions)))
	for _, p := range positions {
		b = binary.AppendUvarint(b, uint64(len(p.origin)))
		b = append(b, p.origin...)
		b = binary.AppendUvarint(b, uint64(p.offset))
		b = binary.AppendUvarint(b, p.sub)
	}
	return append(b, value...)
}

// TestEnvelopeV1ReadAsV2: a value stored before envelope version 2 (origins
// by name) answers applied as the same positions by id would, and its next
// write keeps its other origins' positions and is 8 bytes per origin instead
// of the name's length plus one.
func TestEnvelopeV1ReadAsV2(t *testing.T) {
	const a, b = "emostream-scale-k10000-topic1/3", "x/1>emostream-app-KSTREAM-REPARTITION-0000000003-repartition"
	old := encodeV1([]v1Position{{a, 41, 2}, {b, 7, 1 << 16}}, []byte("value"))
	for _, c := range []struct {
		p       writePosition
		applied bool
	}{
		{pos(a, 41, 2), true}, {pos(a, 41, 1), true}, {pos(a, 40, 9), true},
		{pos(a, 41, 3), false}, {pos(a, 42, 0), false},
		{pos(b, 7, 1<<16), true}, {pos(b, 8, 0), false},
		{pos("other/0", 0, 0), false},
	} {
		v, applied, err := scanEnvelope(old, c.p)
		if err != nil || string(v) != "value" || applied != c.applied {
			t.Errorf("scanEnvelope(v1, %s@%d.%d) = %q, %v, %v; want applied %v", c.p.origin, c.p.offset, c.p.sub, v, applied, err, c.applied)
		}
	}
	got, err := rewriteEnvelope([]byte("key"), old, pos(a, 42, 1), []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte("key")) {
		t.Fatalf("rewrite lost the key prefix: %x", got)
	}
	e, err := decodeEnvelope(got[3:])
	if err != nil {
		t.Fatal(err)
	}
	want := envelope{positions: []storedPosition{{originID(b), 7, 1 << 16}, {originID(a), 42, 1}}, value: []byte("new")}
	if got[3] != envelopeVersion || !sameEnvelope(e, want) {
		t.Fatalf("rewrite of a v1 envelope = %x (%+v), want version %d with %+v", got[3:], e, envelopeVersion, want)
	}
	if n, w := len(got)-3, 1+1+2*8+1+3+1+1+len("new"); n != w {
		t.Fatalf("rewritten envelope is %d bytes, want %d", n, w)
	}
	if len(old) < len(got)-3+len(a)+len(b)-2*8 {
		t.Fatalf("v1 %d bytes, v2 %d: the origins' names were not replaced by ids", len(old), len(got)-3)
	}
}
