package stream

// murmur2 is the hash of Kafka's Java DefaultPartitioner, so records keyed the
// same way land in the same partition whether a Go or a Java client wrote them.
func murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := n &^ 3
	switch n & 3 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// partitionFor returns the partition of a serialized key among n partitions,
// as Kafka's Java clients compute it: toPositive(murmur2(key)) % n.
func partitionFor(key []byte, n int32) int32 {
	return (murmur2(key) & 0x7fffffff) % n
}
