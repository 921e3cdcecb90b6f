package embedded

import (
	"encoding/binary"
	"net"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kbin"
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
//     nothing. The shim rewrites those requests on the connection,
//     lower-casing the filter, before kfake reads them. (A kfake control
//     function could do the same, but kfake remembers every connection a
//     control function has seen for good, which grows without bound in a
//     long-running broker.)

// compatKeys are the request keys whose responses compatConn rewrites.
var compatKeys = map[int16]bool{
	int16(kmsg.DescribeTopicPartitions): true,
}

// compatRequestKeys are the request keys compatConn rewrites themselves.
var compatRequestKeys = map[int16]bool{
	int16(kmsg.ListGroups): true,
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

// compatConn watches the request frames a client sends (their headers) to
// learn which correlation ids belong to requests in compatKeys, rewrites the
// response frames with those ids, and rewrites the requests in
// compatRequestKeys. Every other request and response passes through
// unchanged.
//
// kfake reads a connection from one goroutine and writes it from another,
// so the read side and the write side each keep their own state; the map
// of pending correlation ids is shared under mu.
type compatConn struct {
	net.Conn

	// Read side: how many bytes of a passed-through request body are
	// still to come; the bytes held back (a request header not yet
	// complete, or a whole request to rewrite) and how many of the latter
	// are missing; bytes ready for the reader; the read error to return
	// once they are read.
	rskip int64
	rhold []byte
	rneed int
	rout  []byte // ready for the reader from roff on
	roff  int
	rerr  error
	rbuf  []byte

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

// Read reads requests from the client, notes the correlation ids of those
// whose responses are to be rewritten and rewrites the requests in
// compatRequestKeys. Reads that fall inside a request body go straight to
// the connection; the rest is read through a small buffer.
func (c *compatConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.roff < len(c.rout) {
			n := copy(p, c.rout[c.roff:])
			c.roff += n
			if c.roff == len(c.rout) { // drained: reuse the buffer
				c.rout, c.roff = c.rout[:0], 0
			}
			return n, nil
		}
		if c.rerr != nil {
			return 0, c.rerr
		}
		if len(c.rhold) == 0 && c.rskip >= int64(len(p)) {
			// p lies inside a request body: read straight into it.
			n, err := c.Conn.Read(p)
			c.rskip -= int64(n)
			return n, err
		}
		// Headers and small requests go through a buffer, so a request
		// (or several) comes in with one read, however little the
		// reader asks for (kfake reads the 4-byte size first).
		if c.rbuf == nil {
			c.rbuf = make([]byte, readBufSize)
		}
		n, err := c.Conn.Read(c.rbuf)
		c.feed(c.rbuf[:n])
		c.rerr = err
	}
}

// readBufSize is the size of compatConn's read buffer.
const readBufSize = 4 << 10

// feed runs b through the request framing and appends what the reader is
// to get to rout.
func (c *compatConn) feed(b []byte) {
	const hdrLen = 12 // size, key, version, correlation id
	for len(b) > 0 {
		switch {
		case c.rskip > 0: // the rest of a body that passes through
			k := int(min(int64(len(b)), c.rskip))
			c.rout = append(c.rout, b[:k]...)
			c.rskip -= int64(k)
			b = b[k:]
		case c.rneed > 0: // the rest of a request to rewrite
			k := min(len(b), c.rneed)
			c.rhold = append(c.rhold, b[:k]...)
			c.rneed -= k
			b = b[k:]
			if c.rneed == 0 {
				c.rout = append(c.rout, rewriteRequest(c.rhold)...)
				c.rhold = nil
			}
		default: // the header of the next request
			k := min(len(b), hdrLen-len(c.rhold))
			c.rhold = append(c.rhold, b[:k]...)
			b = b[k:]
			if len(c.rhold) < hdrLen {
				continue
			}
			size := int64(binary.BigEndian.Uint32(c.rhold[0:4]))
			key := int16(binary.BigEndian.Uint16(c.rhold[4:6]))
			version := int16(binary.BigEndian.Uint16(c.rhold[6:8]))
			corr := int32(binary.BigEndian.Uint32(c.rhold[8:12]))
			body := max(size-(hdrLen-4), 0) // after key, version and correlation id
			if compatKeys[key] {
				c.mu.Lock()
				c.pending[corr] = pendingReq{key: key, version: version}
				c.mu.Unlock()
			}
			if compatRequestKeys[key] && body > 0 && body <= maxRewrite {
				c.rneed = int(body)
				continue
			}
			c.rout = append(c.rout, c.rhold...)
			c.rhold = c.rhold[:0]
			c.rskip = body
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

// rewriteRequest returns a request frame (size, key, version, correlation
// id, client id, header tags, body) fixed for kfake, or frame itself when
// there is nothing to fix or it cannot be parsed (kfake then answers or
// drops it as it would have).
func rewriteRequest(frame []byte) []byte {
	key := int16(binary.BigEndian.Uint16(frame[4:6]))
	version := int16(binary.BigEndian.Uint16(frame[6:8]))
	req := kmsg.RequestForKey(key)
	if req == nil {
		return frame
	}
	req.SetVersion(version)
	r := kbin.Reader{Src: frame[12:]}
	r.NullableString() // client id
	if req.IsFlexible() {
		kmsg.SkipTags(&r)
	}
	if !r.Ok() {
		return frame
	}
	hdrLen := len(frame) - len(r.Src)
	if err := req.ReadFrom(r.Src); err != nil {
		return frame
	}
	lg, ok := req.(*kmsg.ListGroupsRequest)
	if !ok {
		return frame
	}
	changed := false
	for i, t := range lg.TypesFilter {
		if l := strings.ToLower(t); l != t {
			lg.TypesFilter[i] = l
			changed = true
		}
	}
	if !changed {
		return frame
	}
	out := append(make([]byte, 0, len(frame)), frame[:hdrLen]...)
	out = req.AppendTo(out)
	binary.BigEndian.PutUint32(out[0:4], uint32(len(out)-4))
	return out
}

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
