package stream

import (
	"bufio"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPartitionForMatchesJavaClient checks partitionFor against partitions
// that Kafka's Java client computed (testdata/java-partitions.txt says how):
// keys of every length modulo 4, multi-byte UTF-8 and bytes with the high
// bit set, which a sign-extension mistake in murmur2 would get wrong.
func TestPartitionForMatchesJavaClient(t *testing.T) {
	f, err := os.Open("testdata/java-partitions.txt")
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	checked := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		fields := strings.Fields(line)
		require.Len(t, fields, 3, line)
		var key []byte
		if fields[0] != "-" {
			key, err = hex.DecodeString(fields[0])
			require.NoError(t, err, line)
		}
		n, err := strconv.ParseInt(fields[1], 10, 32)
		require.NoError(t, err, line)
		want, err := strconv.ParseInt(fields[2], 10, 32)
		require.NoError(t, err, line)
		require.Equal(t, int32(want), partitionFor(key, int32(n)), "key %q n %d", key, n)
		checked++
	}
	require.NoError(t, sc.Err())
	require.Equal(t, 140, checked, "every vector was read")
}
