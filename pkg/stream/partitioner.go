package stream

import "github.com/IBM/sarama"

// javaPartitioner is sarama's copy of the Java client's default partitioner
// for keyed records, (murmur2(key) & 0x7fffffff) % n, so records keyed the
// same way land in the same partition whether a Go or a Java client wrote
// them. It keeps no state for keyed records, so one is shared.
var javaPartitioner = sarama.NewMurmur2Partitioner("")

// partitionFor returns the partition of a serialized key among n partitions,
// as Kafka's Java clients compute it.
func partitionFor(key []byte, n int32) int32 {
	// A ByteEncoder never fails to encode, and a non-nil Key (even of an
	// empty key) never takes the random path.
	p, _ := javaPartitioner.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(key)}, n)
	return p
}

// partitionHasher is a hash.Hash32 for goka (whose View picks a key's
// partition as Sum32 % n) that places keys as Kafka's Java clients do: its
// Sum32 is the partition javaPartitioner picks among n.
type partitionHasher struct {
	n   int32
	key []byte
}

func (h *partitionHasher) Write(p []byte) (int, error) {
	h.key = append(h.key, p...)
	return len(p), nil
}
func (h *partitionHasher) Sum32() uint32 { return uint32(partitionFor(h.key, h.n)) }
func (h *partitionHasher) Sum(b []byte) []byte {
	s := h.Sum32()
	return append(b, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}
func (h *partitionHasher) Reset()         { h.key = h.key[:0] }
func (h *partitionHasher) Size() int      { return 4 }
func (h *partitionHasher) BlockSize() int { return 1 }
