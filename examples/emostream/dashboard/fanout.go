package dashboard

import (
	"bytes"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The writer pool. With thousands of viewers the fan-out's cost is one
// write syscall per viewer and clump; waking a goroutine per viewer, and
// net/http's buffering and chunking per viewer, came on top of it (about
// 40 % of the per-viewer CPU in BenchmarkFanout's profile). So an event
// stream over HTTP/1.1 is taken over from net/http (hijacked) and joins a
// shard; one goroutine per shard writes each clump to all of the shard's
// viewers, the same pre-encoded HTTP chunk to every one, each write a
// single non-blocking attempt. A viewer whose socket does not take the
// whole chunk at once (a slow or stalled connection) leaves the pool: a
// goroutine of its own finishes the write, with the write deadline, and
// catches up from the ring, then hands the viewer back. So a slow viewer
// never holds up the others, as before.
//
// Streams that cannot be hijacked (HTTP/2, HTTP/1.0, HEAD, a wrapped
// ResponseWriter) are served by a goroutine each, as [Server.serveEvents]
// always did.

// writers is the number of shards: one writer per CPU the Go scheduler
// uses.
func writers() int { return max(1, runtime.GOMAXPROCS(0)) }

// batch is one clump of frames, [from, to) in the hub's sequence, as one
// HTTP/1.1 chunk. Batches form a list in publication order.
type batch struct {
	from, to uint64
	data     []byte
	born     time.Time    // the clump's first broadcast
	left     atomic.Int32 // shards that have not written it yet
	next     *batch       // the following batch, once published
}

// shard is a set of pooled viewers and the goroutine that writes to them.
type shard struct {
	h    *hub
	kick chan struct{} // a new batch is there

	mu    sync.Mutex
	sinks map[*sink]struct{}

	done    *batch  // the last batch this shard wrote
	scratch []*sink // the worker's copy of sinks
}

// chunkCache is a shard's chunk of one round for viewers that are not at
// the batch's start.
type chunkCache struct {
	from uint64
	data []byte
}

// sink is a hijacked event stream.
type sink struct {
	h     *hub
	sh    *shard
	v     *viewer
	conn  net.Conn
	raw   syscall.RawConn
	frame [][]byte // catch-up's frames

	mu     sync.Mutex
	slow   bool // written by its own goroutine (catchUp), not the shard
	closed bool
}

// appendChunk appends frames to dst as one HTTP/1.1 chunk.
func appendChunk(dst []byte, frames [][]byte) []byte {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	if n == 0 {
		return dst
	}
	dst = strconv.AppendInt(dst, int64(n), 16)
	dst = append(dst, "\r\n"...)
	for _, f := range frames {
		dst = append(dst, f...)
	}
	return append(dst, "\r\n"...)
}

// pooled reports whether the stream can be served by the writer pool:
// HTTP/1.1 or later over a connection net/http lets go of, on a system
// where a socket can be written without waiting.
func pooled(w http.ResponseWriter, r *http.Request) bool {
	if !tryWriteSupported || r.Method != http.MethodGet || r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return false
	}
	_, ok := w.(http.Hijacker)
	return ok
}

// servePooled takes the connection over from net/http, writes the response
// head and greeting, and adds the viewer to a shard. It returns at once; a
// goroutine of the viewer's own waits for the connection to close.
func (s *Server) servePooled(w http.ResponseWriter, v *viewer, greeting []byte) {
	h := w.Header()
	h.Set("Transfer-Encoding", "chunked")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.hub.unsubscribe(v)
		return
	}
	// net/http may have left deadlines on the connection (ReadTimeout);
	// the stream lasts as long as the viewer stays.
	_ = conn.SetDeadline(time.Time{})
	sc, ok := conn.(syscall.Conn)
	var raw syscall.RawConn
	if ok {
		raw, err = sc.SyscallConn()
	}
	if !ok || err != nil {
		conn.Close()
		s.hub.unsubscribe(v)
		return
	}
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(&head)
	head.WriteString("\r\n")
	head.Write(appendChunk(nil, [][]byte{greeting}))
	k := &sink{h: s.hub, v: v, conn: conn, raw: raw, slow: true}
	if !s.hub.addSink(k) {
		conn.Close()
		s.hub.unsubscribe(v)
		return
	}
	_ = brw // nothing is read from the viewer but the end of the connection
	go k.run(head.Bytes())
}

// run writes the head and what the viewer missed, then reads the
// connection until it ends (the client left, or a writer closed it) and
// frees the viewer's place.
func (k *sink) run(head []byte) {
	k.catchUp(head)
	var buf [64]byte
	for {
		if _, err := k.conn.Read(buf[:]); err != nil {
			break
		}
	}
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	k.sh.remove(k)
	k.conn.Close()
	k.h.unsubscribe(k.v)
}

// catchUp writes pending and then every frame the viewer has not had,
// waiting for the connection as long as the write deadline allows, and
// hands the viewer back to its shard once it is up to date. A write error,
// a closed hub or a viewer dropped for falling behind the ring closes the
// connection.
func (k *sink) catchUp(pending []byte) {
	for {
		if len(pending) > 0 {
			_ = k.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := k.conn.Write(pending); err != nil {
				k.conn.Close()
				return
			}
		}
		k.mu.Lock()
		var ok bool
		k.frame, _, ok = k.h.read(k.v, k.frame[:0])
		if !ok || k.closed {
			k.mu.Unlock()
			k.conn.Close()
			return
		}
		if len(k.frame) == 0 {
			// The shard's writes do not wait, and a past deadline
			// would fail them.
			_ = k.conn.SetWriteDeadline(time.Time{})
			k.slow = false
			k.mu.Unlock()
			return
		}
		k.mu.Unlock()
		pending = appendChunk(nil, k.frame)
		clear(k.frame)
	}
}

// push writes batch b to the viewer with one non-blocking write, unless
// it has it already or is catching up on its own. What the socket does not
// take goes to catchUp.
func (k *sink) push(b *batch, c *chunkCache) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.slow || k.closed || k.v.next >= b.to {
		return
	}
	data := b.data
	if k.v.next != b.from {
		// Behind the batch (its shard skipped a batch while it was busy
		// writing): what it lacks, encoded once per round for the
		// shard's viewers that lack the same.
		if c.data == nil || c.from != k.v.next {
			var ok bool
			if data, ok = k.h.encode(k.v, b.to); !ok {
				k.closed = true
				k.conn.Close()
				return
			}
			c.from, c.data = k.v.next, data
		}
		data = c.data
	}
	n, err := tryWrite(k.raw, data)
	if err != nil {
		k.closed = true
		k.conn.Close()
		return
	}
	k.v.next = b.to
	if n < len(data) {
		k.slow = true
		go k.catchUp(data[n:])
	}
}

// encode returns the frames from v's position to to as one chunk, or
// false (and counts v as dropped) when the ring no longer has them.
func (h *hub) encode(v *viewer, to uint64) ([]byte, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.seq-v.next > uint64(len(h.ring)) {
		h.dropped()
		return nil, false
	}
	return appendChunk(nil, h.frames(v.next, to, nil)), true
}

// addSink puts k in a shard, starting the writers on first use; false
// when the hub is closed.
func (h *hub) addSink(k *sink) bool {
	h.startW.Do(func() {
		h.mu.RLock()
		for _, sh := range h.shards {
			sh.done = h.last
			go sh.run()
		}
		h.mu.RUnlock()
	})
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return false
	}
	sh := h.shards[int(h.nextSh.Add(1))%len(h.shards)]
	k.sh = sh
	sh.mu.Lock()
	if sh.sinks == nil {
		sh.sinks = map[*sink]struct{}{}
	}
	sh.sinks[k] = struct{}{}
	sh.mu.Unlock()
	return true
}

func (sh *shard) remove(k *sink) {
	sh.mu.Lock()
	delete(sh.sinks, k)
	sh.mu.Unlock()
}

// closeAll ends the shard's streams; the viewers' goroutines then see
// their connections end.
func (sh *shard) closeAll() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for k := range sh.sinks {
		k.conn.Close()
	}
}

// run writes every new batch to the shard's viewers until the hub closes.
//
// A round goes through the shard's viewers once. Every [yieldEvery]
// viewers it lets other goroutines run (the results of the same window
// that other partitions close a little later are on their way through the
// aggregator, the broker and the consumer in this process, and the Go
// scheduler would otherwise give them the CPU only every 10 ms) and looks
// for a newer batch: if there is one, the viewers not served yet get both
// in one write, and a further round brings the newer one to those served
// before. A batch is timed when a round that saw no newer batch ends.
func (sh *shard) run() {
	h := sh.h
	latest := func() *batch {
		h.mu.RLock()
		defer h.mu.RUnlock()
		return h.last
	}
	for {
		select {
		case <-sh.kick:
		case <-h.stopped:
			return
		}
		for b := latest(); b != sh.done; b = latest() {
			sh.mu.Lock()
			sh.scratch = sh.scratch[:0]
			for k := range sh.sinks {
				sh.scratch = append(sh.scratch, k)
			}
			sh.mu.Unlock()
			var c chunkCache
			switched := false
			for i, k := range sh.scratch {
				if i%yieldEvery == yieldEvery-1 {
					runtime.Gosched()
					if nb := latest(); nb != b {
						b, c, switched = nb, chunkCache{}, true
					}
				}
				k.push(b, &c)
			}
			clear(sh.scratch)
			if switched {
				continue
			}
			// The last shard to finish a batch times it.
			for x := sh.done.next; x != nil; x = x.next {
				if x.left.Add(-1) == 0 {
					h.fanout(time.Since(x.born))
				}
				if x == b {
					break
				}
			}
			sh.done = b
		}
	}
}

// yieldEvery is how many viewers a writer serves between two looks at
// the rest of the process: about half a millisecond of writes.
const yieldEvery = 64
