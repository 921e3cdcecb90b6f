package kv

import (
	"encoding/binary"
	"testing"
)

// benchKey fills a 16-byte key; multiplying by an odd constant scatters
// consecutive i across the key space so inserts are not append-only.
func benchKey(buf []byte, i int) []byte {
	binary.BigEndian.PutUint64(buf[:8], uint64(i)*0x9E3779B97F4A7C15)
	binary.BigEndian.PutUint64(buf[8:16], uint64(i))
	return buf[:16]
}

func benchBackends() []backend {
	return []backend{
		{"memory", func(t testing.TB) Store { return closeLater(t, NewMemory()) }},
		{"pebble", func(t testing.TB) Store { return openPebble(t, t.TempDir()) }},
	}
}

func BenchmarkPut(b *testing.B) {
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			key := make([]byte, 16)
			val := make([]byte, 32)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := s.Put(benchKey(key, i), val); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	const preload = 100_000
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			key := make([]byte, 16)
			val := make([]byte, 32)
			for i := range preload {
				if err := s.Put(benchKey(key, i), val); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, ok, err := s.Get(benchKey(key, i%preload)); err != nil || !ok {
					b.Fatal("missing key", err)
				}
			}
		})
	}
}
