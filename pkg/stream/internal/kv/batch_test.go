package kv

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// plainStore hides a backend's WriteBatch, so WriteBatch's one-by-one path
// is tested too.
type plainStore struct{ Store }

func TestWriteBatch(t *testing.T) {
	for _, b := range backends() {
		for _, wrap := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/plain=%v", b.name, wrap), func(t *testing.T) {
				var s Store = b.open(t)
				if wrap {
					s = plainStore{s}
				}
				require.NoError(t, s.Put([]byte("gone"), []byte("x")))
				key, val := []byte("a"), []byte("1")
				ops := []Op{
					{Key: key, Value: val},
					{Key: []byte("b"), Value: []byte("2")},
					{Key: []byte("b"), Value: []byte("3")}, // later op wins
					{Key: []byte("gone"), Delete: true},
					{Key: []byte("empty"), Value: nil},
				}
				require.NoError(t, WriteBatch(s, ops))
				// The store copied the slices.
				key[0], val[0] = 'z', '9'
				v, ok, err := s.Get([]byte("a"))
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, "1", string(v))
				v, ok, err = s.Get([]byte("b"))
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, "3", string(v))
				_, ok, err = s.Get([]byte("gone"))
				require.NoError(t, err)
				require.False(t, ok)
				v, ok, err = s.Get([]byte("empty"))
				require.NoError(t, err)
				require.True(t, ok, "a put of a nil value stores an empty value")
				require.Empty(t, v)
				require.Equal(t, int64(3), s.ApproximateLen())

				require.NoError(t, s.Close())
				require.ErrorIs(t, WriteBatch(s, ops), ErrClosed)
			})
		}
	}
}

// BenchmarkRestore: changelog records/s written into a fresh store, one
// by one (Put) and in batches of 1000 (WriteBatch), as a restore does.
func BenchmarkRestore(b *testing.B) {
	for _, be := range benchBackends() {
		for _, batch := range []int{1, 1000} {
			b.Run(fmt.Sprintf("%s/batch=%d", be.name, batch), func(b *testing.B) {
				s := be.open(b)
				ops := make([]Op, batch)
				keys := make([][]byte, batch)
				for i := range keys {
					keys[i] = make([]byte, 16)
				}
				val := make([]byte, 40)
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					for j := range ops {
						ops[j] = Op{Key: benchKey(keys[j], n), Value: val}
						n++
					}
					var err error
					if batch == 1 {
						err = s.Put(ops[0].Key, ops[0].Value)
					} else {
						err = WriteBatch(s, ops)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}
