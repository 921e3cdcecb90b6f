package embedded

import (
	"encoding/binary"
	"net"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file holds the compatibility shim between kfake and Apache Kafka's
// own Java tools (kafka-topics, kafka-consumer-groups, GetOffsetShell, ...).
// kfake answers two requests in a way the Java admin client (4.x) does not
// accept; see doc.go ("Kafka's own tools") for the user-facing summary and
// kafkatools_test.go for the test that runs the tools.
//
//  1. DescribeTopicPartitions (key 75): kfake leaves EligibleLeaderReplicas
//     and LastKnownELR nil, which the wire format carries as a null array.
//     Apache Kafka always sends an array (empty when there are none), and
//     the Java client calls eligibleLeaderReplicas().stream() without a
//     null check: every describeTopics call fails with a
//     NullPointerException. The shim rewrites those responses on the
//     connection, replacing the null arrays with empty ones.
//  2. ListGroups (key 16, v5+): the Java client filters by group type with
//     the capitalised names ("Classic", "Consumer"), and Apache Kafka's
//     broker matches them case-insensitively; kfake compares them exactly
//     with its lower-case types, so `kafka-consumer-groups --list` lists
//     nothing. A kfake control function lower-cases the filter before kfake
//     handles the request.

// compatKeys are the request keys whose responses compatConn rewrites.
var compatKeys = map[int16]bool{
	int16(kmsg.DescribeTopicPartitions): true,
}

// installCompat adds the request-side fixes to a freshly created cluster.
func installCompat(c *kfake.Cluster) {
	c.ControlKey(int16(kmsg.ListGroups), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if lg, ok := req.(*kmsg.ListGroupsRequest); ok {
			for i, t := range lg.TypesFilter {
				lg.TypesFilter[i] = strings.ToLower(t)
			}
		}
		// Not handled: kfake answers the (now lower-case) request itself,
		// and an unhandled control function stays installed.
		return nil, nil, false
	})
}

// compatListener wraps the broker's listener so every accepted connection
// is a compatConn.
type compatListener struct {
	net.Listener
}

func (l compatListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newCompatConn(c), nil
}

// compatConn watches the request frames a client sends (only their headers)
// to learn which correlation ids belong to requests in compatKeys, and
// rewrites the response frames with those ids. Every other byte passes
// through unchanged and uncopied.
//
// kfake reads a connection from one goroutine and writes it from another,
// so the read side and the write side each keep their own state; the map
// of pending correlation ids is shared under mu.
type compatConn struct {
	net.Conn

	// Read side: the 12-byte header of the request frame being read
	// (size, key, version, correlation id) and how many bytes of its body
	// are still to come.
	rhdr  [12]byte
	rhdrN int
	rskip int64

	// Write side: the 8-byte header of the response frame being written
	// (size, correlation id), how many bytes of a passed-through body are
	// still to come, and a frame being collected for a rewrite.
	whdr     [8]byte
	whdrN    int
	wskip    int64
	wframe   []byte // the whole frame (header included) while collecting
	wneed    int    // bytes of wframe still missing
	wversion int16
	wkey     int16

	mu      sync.Mutex
	pending map[int32]pendingReq
}

type pendingReq struct {
	key     int16
	version int16
}

func newCompatConn(c net.Conn) *compatConn {
	return &compatConn{Conn: c, pending: make(map[int32]pendingReq)}
}

// Read reads from the client and notes the headers of the request frames
// that pass by.
func (c *compatConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.observe(p[:n])
	return n, err
}

func (c *compatConn) observe(b []byte) {
	for len(b) > 0 {
		if c.rskip > 0 {
			k := min(int64(len(b)), c.rskip)
			c.rskip -= k
			b = b[k:]
			continue
		}
		k := copy(c.rhdr[c.rhdrN:], b)
		c.rhdrN += k
		b = b[k:]
		if c.rhdrN < len(c.rhdr) {
			return
		}
		c.rhdrN = 0
		size := int64(binary.BigEndian.Uint32(c.rhdr[0:4]))
		key := int16(binary.BigEndian.Uint16(c.rhdr[4:6]))
		version := int16(binary.BigEndian.Uint16(c.rhdr[6:8]))
		corr := int32(binary.BigEndian.Uint32(c.rhdr[8:12]))
		c.rskip = max(size-8, 0) // the body after key, version and correlation id
		if compatKeys[key] {
			c.mu.Lock()
			c.pending[corr] = pendingReq{key: key, version: version}
			c.mu.Unlock()
		}
	}
}

// Write writes responses to the client, rewriting the frames that answer a
// pending request. It reports len(p) written when everything was handed on.
func (c *compatConn) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		// kfake writes one whole frame per call: pass it on in one write
		// (two would cost a second packet) unless it is to be rewritten.
		if c.whdrN == 0 && c.wskip == 0 && c.wneed == 0 && len(p) >= 8 {
			size := int64(binary.BigEndian.Uint32(p[0:4]))
			corr := int32(binary.BigEndian.Uint32(p[4:8]))
			if 4+size <= int64(len(p)) && !c.isPending(corr) {
				if _, err := c.Conn.Write(p[:4+size]); err != nil {
					return total - len(p), err
				}
				p = p[4+size:]
				continue
			}
		}
		switch {
		case c.wskip > 0: // the rest of a frame that passes through
			k := min(int64(len(p)), c.wskip)
			if _, err := c.Conn.Write(p[:k]); err != nil {
				return total - len(p), err
			}
			c.wskip -= k
			p = p[k:]
		case c.wneed > 0: // the rest of a frame to rewrite
			k := min(len(p), c.wneed)
			c.wframe = append(c.wframe, p[:k]...)
			c.wneed -= k
			p = p[k:]
			if c.wneed == 0 {
				out := rewriteResponse(c.wframe, c.wkey, c.wversion)
				c.wframe = nil
				if _, err := c.Conn.Write(out); err != nil {
					return total - len(p), err
				}
			}
		default: // the header of the next frame
			k := copy(c.whdr[c.whdrN:], p)
			c.whdrN += k
			p = p[k:]
			if c.whdrN < len(c.whdr) {
				continue
			}
			c.whdrN = 0
			size := int64(binary.BigEndian.Uint32(c.whdr[0:4]))
			corr := int32(binary.BigEndian.Uint32(c.whdr[4:8]))
			c.mu.Lock()
			req, ok := c.pending[corr]
			delete(c.pending, corr)
			c.mu.Unlock()
			if ok && size-4 <= maxRewrite {
				c.wkey, c.wversion = req.key, req.version
				c.wframe = append(make([]byte, 0, 4+size), c.whdr[:]...)
				c.wneed = int(size - 4)
				if c.wneed <= 0 { // an empty body: nothing to rewrite
					c.wneed = 0
					if _, err := c.Conn.Write(c.wframe); err != nil {
						return total - len(p), err
					}
					c.wframe = nil
				}
				continue
			}
			if _, err := c.Conn.Write(c.whdr[:]); err != nil {
				return total - len(p), err
			}
			c.wskip = max(size-4, 0)
		}
	}
	return total, nil
}

// isPending reports whether corr answers a request whose response is to be
// rewritten.
func (c *compatConn) isPending(corr int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[corr]
	return ok
}

// maxRewrite bounds the body of a response the shim collects to rewrite; a
// larger one (no DescribeTopicPartitions answer comes near it) passes
// through unchanged.
const maxRewrite = 64 << 20

// rewriteResponse returns frame (size, correlation id, header tags, body)
// with its body fixed for Kafka's Java clients, or frame itself when there
// is nothing to fix or it cannot be parsed.
func rewriteResponse(frame []byte, key, version int16) []byte {
	resp := kmsg.ResponseForKey(key)
	if resp == nil {
		return frame
	}
	resp.SetVersion(version)
	r := kbin.Reader{Src: frame[8:]}
	// Flexible responses have a header with tagged fields, except
	// ApiVersions (whose header stays v0 so any client can read it).
	if resp.IsFlexible() && key != int16(kmsg.ApiVersions) {
		kmsg.SkipTags(&r)
	}
	if !r.Ok() {
		return frame
	}
	hdrLen := len(frame) - len(r.Src)
	if err := resp.ReadFrom(r.Src); err != nil {
		return frame
	}
	if !fixResponse(resp) {
		return frame
	}
	out := append(make([]byte, 0, len(frame)+64), frame[:hdrLen]...)
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out[0:4], uint32(len(out)-4))
	return out
}

// fixResponse patches resp in place and reports whether it changed.
func fixResponse(resp kmsg.Response) bool {
	changed := false
	if r, ok := resp.(*kmsg.DescribeTopicPartitionsResponse); ok {
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				p := &r.Topics[i].Partitions[j]
				if p.EligibleLeaderReplicas == nil {
					p.EligibleLeaderReplicas = []int32{}
					changed = true
				}
				if p.LastKnownELR == nil {
					p.LastKnownELR = []int32{}
					changed = true
				}
			}
		}
	}
	return changed
}
