package aggregation

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUserSet(t *testing.T) {
	var s userSet
	for _, id := range []string{"bob", "ann", "", "bob", "ann\x00x", "a", "ann"} {
		before := slices.Clone(s)
		next := s.add(id)
		require.Equal(t, before, s, "add leaves the old set alone")
		s = next
	}
	var ids []string
	s.entries(func(_, _ int, id []byte) bool { ids = append(ids, string(id)); return true })
	require.Equal(t, []string{"", "a", "ann", "ann\x00x", "bob"}, ids, "sorted, each once")
	require.Equal(t, 5, s.size())

	b, err := encodeUserSet(s)
	require.NoError(t, err)
	back, err := decodeUserSet(b)
	require.NoError(t, err)
	require.Equal(t, s, back)

	for _, bad := range [][]byte{{5, 'a'}, {0x80}, append(slices.Clone(b), 3)} {
		_, err := decodeUserSet(bad)
		require.ErrorIs(t, err, errBadUserSet, "%q", bad)
	}
	empty, err := decodeUserSet(nil)
	require.NoError(t, err)
	require.Zero(t, empty.size())
}
