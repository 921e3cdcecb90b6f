package dashboard

import (
	"sync"
	"sync/atomic"
	"time"
)

// hub fans events out to viewers without ever waiting for one.
//
// Every event is encoded once, by the caller of [hub.broadcast], and stored
// in a ring shared by all viewers; broadcast appends to the ring and wakes
// the viewers by closing one channel, so its cost does not grow with the
// number of viewers and it never blocks on one. Each viewer keeps its own
// position in the ring and, when woken, writes everything new in one write
// and one flush: the results of a window arrive in a clump, and a viewer
// that is late to run sends them together instead of one syscall each.
//
// The wake-up waits [linger] after the first frame of a clump: all results
// of a window close at once and reach the dashboard within microseconds of
// each other (one fetch answer holds every partition's), one broadcast
// each. Woken per frame, every viewer would write several times per window;
// with the linger it writes once, which is most of the fan-out's cost (a
// syscall per viewer and write).
//
// Most viewers do not have a goroutine woken per clump: their connections
// are written by a pool of a few writers, each clump encoded once as an
// HTTP chunk for all of them (fanout.go). The goroutine-per-viewer path
// (read, wake) serves the streams the pool cannot take.
//
// A viewer that falls more than the ring's size behind (its connection is
// too slow, or stalled until the write deadline) is dropped: the ring does
// not wait for it, and [hub.read] tells it it lost events. The browser
// reconnects and reloads the history. Dropped viewers are counted.
type hub struct {
	max     int
	dropped func() // counts a dropped viewer

	count atomic.Int64 // viewers subscribed

	mu     sync.RWMutex
	ring   [][]byte
	seq    uint64        // frames published so far; frame i is ring[i%len(ring)]
	wake   chan struct{} // closed (and replaced) to wake the viewers
	waking bool          // a wake-up is scheduled
	born   time.Time     // when the clump being lingered on began
	last   *batch        // the latest clump, as one HTTP chunk (fanout.go)
	closed bool
	linger time.Duration

	// The writer pool (fanout.go): connections taken over from net/http
	// are written by one goroutine per shard instead of one per viewer.
	shards  []*shard
	startW  sync.Once
	nextSh  atomic.Uint32
	stopped chan struct{} // closed by close: the writers end
	fanout  func(time.Duration)
}

// linger is how long a wake-up waits for more frames of the same clump.
const linger = 2 * time.Millisecond

// viewer is one subscribed event stream.
type viewer struct {
	next uint64 // the seq of the next frame it has not read
}

// newHub returns a hub for at most max viewers that keeps the last buffer
// frames. dropped counts a dropped viewer.
func newHub(max, buffer int, dropped func()) *hub {
	h := &hub{
		max:     max,
		dropped: dropped,
		ring:    make([][]byte, buffer),
		wake:    make(chan struct{}),
		last:    &batch{},
		linger:  linger,
		stopped: make(chan struct{}),
		fanout:  func(time.Duration) {},
	}
	h.shards = make([]*shard, writers())
	for i := range h.shards {
		h.shards[i] = &shard{h: h, kick: make(chan struct{}, 1)}
	}
	return h
}

// subscribe adds a viewer that will see the frames published from now on,
// or returns nil when the hub is full or closed.
func (h *hub) subscribe() *viewer {
	if h.count.Add(1) > int64(h.max) {
		h.count.Add(-1)
		return nil
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		h.count.Add(-1)
		return nil
	}
	return &viewer{next: h.seq}
}

// unsubscribe frees the viewer's place.
func (h *hub) unsubscribe(*viewer) { h.count.Add(-1) }

// broadcast publishes frame to every viewer. frame must not change
// afterwards: viewers write it as it is.
func (h *hub) broadcast(frame []byte) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.ring[h.seq%uint64(len(h.ring))] = frame
	h.seq++
	if !h.waking {
		h.waking = true
		h.born = time.Now()
		time.AfterFunc(h.linger, h.signal)
	}
	h.mu.Unlock()
}

// signal wakes the viewers waiting for frames: the goroutines of the
// viewers served one by one, and the pool's writers, which get the clump
// encoded once as an HTTP chunk for all of their viewers.
func (h *hub) signal() {
	h.mu.Lock()
	h.waking = false
	if h.closed {
		h.mu.Unlock()
		return
	}
	close(h.wake)
	h.wake = make(chan struct{})
	from := max(h.last.to, h.seq-min(h.seq, uint64(len(h.ring))))
	b := &batch{from: from, to: h.seq, born: h.born}
	b.data = appendChunk(nil, h.frames(from, h.seq, nil))
	b.left.Store(int32(len(h.shards)))
	h.last.next = b
	h.last = b
	h.mu.Unlock()
	for _, sh := range h.shards {
		select {
		case sh.kick <- struct{}{}:
		default: // already kicked; it will see the latest batch
		}
	}
}

// frames appends the frames [from, to) to buf; h.mu must be held and
// they must still be in the ring.
func (h *hub) frames(from, to uint64, buf [][]byte) [][]byte {
	for i := from; i < to; i++ {
		buf = append(buf, h.ring[i%uint64(len(h.ring))])
	}
	return buf
}

// read appends the frames v has not read yet to buf and advances v. When
// there are none it returns a channel that is closed when there are, or
// when the hub closes. ok is false when the viewer must end: the hub is
// closed, or the viewer fell so far behind that the ring overwrote frames
// it had not read (it is then counted as dropped).
func (h *hub) read(v *viewer, buf [][]byte) (frames [][]byte, wait <-chan struct{}, ok bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return buf, nil, false
	}
	if h.seq-v.next > uint64(len(h.ring)) {
		h.dropped()
		return buf, nil, false
	}
	for ; v.next < h.seq; v.next++ {
		buf = append(buf, h.ring[v.next%uint64(len(h.ring))])
	}
	if len(buf) == 0 {
		return buf, h.wake, true
	}
	return buf, nil, true
}

// close ends every stream and refuses new ones. Event streams never end on
// their own, so a server shutdown would otherwise wait for them in vain.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	close(h.wake) // wakes the waiting viewers, which then see closed
	close(h.stopped)
	for _, sh := range h.shards {
		sh.closeAll()
	}
}

// viewers returns the number of open streams.
func (h *hub) viewers() int { return int(h.count.Load()) }
