package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fakeConn is a net.Conn whose reads come from in and whose writes are
// recorded.
type fakeConn struct {
	net.Conn
	in  *bytes.Reader
	out bytes.Buffer
}

func (f *fakeConn) Read(p []byte) (int, error) {
	// At most 5 bytes per read, so headers are split across reads.
	return f.in.Read(p[:min(len(p), 5)])
}

func (f *fakeConn) Write(p []byte) (int, error) { return f.out.Write(p) }

// requestFrame is a request frame as a client sends it (header v2).
func requestFrame(req kmsg.Request, corr int32) []byte {
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = append(b, 0xff, 0xff) // null client id
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// responseFrame is a response frame as kfake writes it.
func responseFrame(resp kmsg.Response, corr int32) []byte {
	b := make([]byte, 8)
	if resp.IsFlexible() && resp.Key() != int16(kmsg.ApiVersions) {
		b = append(b, 0)
	}
	b = resp.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	binary.BigEndian.PutUint32(b[4:], uint32(corr))
	return b
}

func dtpResponse() *kmsg.DescribeTopicPartitionsResponse {
	resp := kmsg.NewPtrDescribeTopicPartitionsResponse()
	topic := kmsg.NewDescribeTopicPartitionsResponseTopic()
	topic.Topic = kmsg.StringPtr("t")
	for p := range int32(2) {
		part := kmsg.NewDescribeTopicPartitionsResponseTopicPartition()
		part.Partition = p
		part.Replicas = []int32{0}
		part.ISR = []int32{0}
		topic.Partitions = append(topic.Partitions, part)
	}
	resp.Topics = append(resp.Topics, topic)
	return resp
}

// TestCompatConnRewritesOnlyDescribeTopicPartitions feeds the shim a
// Metadata and a DescribeTopicPartitions request (split across small
// reads), then their responses one byte per write: the Metadata answer
// passes through byte for byte, the DescribeTopicPartitions answer comes
// out with empty (not null) ELR arrays and everything else unchanged.
func TestCompatConnRewritesOnlyDescribeTopicPartitions(t *testing.T) {
	for name, chunk := range map[string]int{"one byte per write": 1, "all in one write": 1 << 20, "7 bytes per write": 7} {
		t.Run(name, func(t *testing.T) { testCompatConnRewrite(t, chunk) })
	}
}

func testCompatConnRewrite(t *testing.T, chunk int) {
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(12)
	dtp := kmsg.NewPtrDescribeTopicPartitionsRequest()
	dtp.SetVersion(0)
	reqs := append(requestFrame(meta, 7), requestFrame(dtp, 8)...)
	reqs = append(reqs, requestFrame(meta, 9)...)

	fc := &fakeConn{in: bytes.NewReader(reqs)}
	c := newCompatConn(fc)
	buf := make([]byte, 64)
	var read []byte
	for {
		n, err := c.Read(buf)
		read = append(read, buf[:n]...)
		if err != nil {
			break
		}
	}
	require.Equal(t, reqs, read, "requests pass through unchanged")

	metaResp := kmsg.NewPtrMetadataResponse()
	metaResp.SetVersion(12)
	metaResp.Brokers = append(metaResp.Brokers, kmsg.NewMetadataResponseBroker())
	metaFrame := responseFrame(metaResp, 7)
	in := dtpResponse()
	dtpFrame := responseFrame(in, 8)
	lastFrame := responseFrame(metaResp, 9)

	all := append(append(append([]byte(nil), metaFrame...), dtpFrame...), lastFrame...)
	for len(all) > 0 {
		k := min(chunk, len(all))
		n, err := c.Write(all[:k])
		require.NoError(t, err)
		require.Equal(t, k, n)
		all = all[k:]
	}
	out := fc.out.Bytes()
	require.True(t, bytes.HasPrefix(out, metaFrame), "the Metadata answer passes through")
	require.True(t, bytes.HasSuffix(out, lastFrame), "the Metadata answer passes through")
	fixed := out[len(metaFrame) : len(out)-len(lastFrame)]
	require.Equal(t, uint32(len(fixed)-4), binary.BigEndian.Uint32(fixed), "frame size")
	require.Equal(t, uint32(8), binary.BigEndian.Uint32(fixed[4:]), "correlation id")

	got := kmsg.NewPtrDescribeTopicPartitionsResponse()
	got.SetVersion(0)
	require.NoError(t, got.ReadFrom(fixed[9:]))
	require.Len(t, got.Topics, 1)
	require.Len(t, got.Topics[0].Partitions, 2)
	for _, p := range got.Topics[0].Partitions {
		assert.NotNil(t, p.EligibleLeaderReplicas, "partition %d: ELR must be an empty array, not null", p.Partition)
		assert.Empty(t, p.EligibleLeaderReplicas)
		assert.NotNil(t, p.LastKnownELR, "partition %d", p.Partition)
		assert.Equal(t, []int32{0}, p.Replicas)
	}
	for i := range in.Topics[0].Partitions {
		in.Topics[0].Partitions[i].EligibleLeaderReplicas = []int32{}
		in.Topics[0].Partitions[i].LastKnownELR = []int32{}
	}
	assert.Equal(t, responseFrame(in, 8), fixed, "only the ELR arrays changed")
	assert.Empty(t, c.pending, "no request left pending")
}

// TestCompatConnPassesUnparsableFrames leaves a response alone when it does
// not parse as the answer to its request.
func TestCompatConnPassesUnparsableFrames(t *testing.T) {
	dtp := kmsg.NewPtrDescribeTopicPartitionsRequest()
	fc := &fakeConn{in: bytes.NewReader(requestFrame(dtp, 3))}
	c := newCompatConn(fc)
	buf := make([]byte, 64)
	for {
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	garbage := []byte{0, 0, 0, 7, 0, 0, 0, 3, 0, 0xff, 0xff}
	n, err := c.Write(garbage)
	require.NoError(t, err)
	require.Equal(t, len(garbage), n)
	require.Equal(t, garbage, fc.out.Bytes())
}

// TestBrokerAnswersJavaAdminRequests sends the two requests the shim fixes
// over the wire, as Kafka's Java admin client (4.x) sends them.
func TestBrokerAnswersJavaAdminRequests(t *testing.T) {
	b, err := Start(DefaultPartitions(2))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	const topic, group = "compat-topic", "compat-group"
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.AllowAutoTopicCreation(),
		kgo.DefaultProduceTopic(topic), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic))
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr())
	for fetched := 0; fetched == 0; {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "the group member never got the record")
		fetched = fs.NumRecords()
	}

	t.Run("DescribeTopicPartitions has empty ELR arrays", func(t *testing.T) {
		req := kmsg.NewPtrDescribeTopicPartitionsRequest()
		rt := kmsg.NewDescribeTopicPartitionsRequestTopic()
		rt.Topic = topic
		req.Topics = append(req.Topics, rt)
		req.ResponsePartitionLimit = 2000
		resp, err := req.RequestWith(ctx, cl)
		require.NoError(t, err)
		require.Len(t, resp.Topics, 1)
		require.Len(t, resp.Topics[0].Partitions, 2)
		for _, p := range resp.Topics[0].Partitions {
			assert.NotNil(t, p.EligibleLeaderReplicas, "partition %d: null ELR (Kafka's admin client throws a NullPointerException)", p.Partition)
			assert.NotNil(t, p.LastKnownELR, "partition %d: null LastKnownELR", p.Partition)
		}
	})

	t.Run("ListGroups type filter is case-insensitive", func(t *testing.T) {
		list := func(types ...string) []string {
			req := kmsg.NewPtrListGroupsRequest()
			req.Version = 5
			req.TypesFilter = types
			resp, err := req.RequestWith(ctx, cl)
			require.NoError(t, err)
			require.Zero(t, resp.ErrorCode)
			var names []string
			for _, g := range resp.Groups {
				names = append(names, g.Group)
			}
			return names
		}
		// What kafka-consumer-groups --list sends (GroupType.toString()).
		assert.Equal(t, []string{group}, list("Classic", "Consumer"))
		assert.Equal(t, []string{group}, list("classic"))
		assert.Equal(t, []string{group}, list())
		assert.Empty(t, list("Share"))
	})
}

// TestCompatConnRewritesListGroupsFilter reads requests the way kfake does
// (the 4-byte size, then the body) through the shim: the ListGroups
// request's type filter comes out lower-cased, the requests around it
// unchanged, whatever the sizes of the underlying reads.
func TestCompatConnRewritesListGroupsFilter(t *testing.T) {
	lg := kmsg.NewPtrListGroupsRequest()
	lg.SetVersion(5)
	lg.TypesFilter = []string{"Classic", "Consumer"}
	lg.StatesFilter = []string{"Stable"}
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(12)
	big := kmsg.NewPtrProduceRequest() // a body larger than the read buffer
	big.SetVersion(9)
	big.TransactionID = kmsg.StringPtr(strings.Repeat("x", 3*readBufSize))
	lower := kmsg.NewPtrListGroupsRequest()
	lower.SetVersion(5)
	lower.TypesFilter = []string{"classic"}

	in := slices.Concat(requestFrame(meta, 1), requestFrame(lg, 2), requestFrame(big, 3), requestFrame(lower, 4), requestFrame(meta, 5))
	want := slices.Concat(requestFrame(meta, 1), nil, requestFrame(big, 3), requestFrame(lower, 4), requestFrame(meta, 5))
	fixed := kmsg.NewPtrListGroupsRequest()
	fixed.SetVersion(5)
	fixed.TypesFilter = []string{"classic", "consumer"}
	fixed.StatesFilter = []string{"Stable"}
	fixedFrame := requestFrame(fixed, 2)
	want = slices.Insert(want, len(requestFrame(meta, 1)), fixedFrame...)

	for _, chunk := range []int{1, 5, 7, 4096, 1 << 20} {
		t.Run(fmt.Sprintf("reads of %d bytes", chunk), func(t *testing.T) {
			c := newCompatConn(&chunkConn{in: bytes.NewReader(in), chunk: chunk})
			var got []byte
			for {
				size := make([]byte, 4)
				if _, err := io.ReadFull(c, size); err != nil {
					require.ErrorIs(t, err, io.EOF)
					break
				}
				body := make([]byte, binary.BigEndian.Uint32(size))
				_, err := io.ReadFull(c, body)
				require.NoError(t, err)
				got = append(append(got, size...), body...)
			}
			require.Equal(t, want, got)
		})
	}
}

// chunkConn is a net.Conn whose reads return at most chunk bytes.
type chunkConn struct {
	net.Conn
	in    *bytes.Reader
	chunk int
}

func (c *chunkConn) Read(p []byte) (int, error) { return c.in.Read(p[:min(len(p), c.chunk)]) }
