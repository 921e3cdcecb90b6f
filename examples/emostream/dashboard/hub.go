package dashboard

import "sync"

// hub fans events out to viewers without ever waiting for one: a viewer
// whose buffer is full is dropped, so one stalled browser cannot delay the
// others or make the consumer buffer without bound.
type hub struct {
	mu      sync.Mutex
	viewers map[*viewer]struct{}
	max     int
	buffer  int
	closed  bool
	dropped func() // counts a dropped viewer
}

type viewer struct {
	events chan []byte
	gone   chan struct{} // closed when the hub drops or closes the viewer
}

func newHub(max, buffer int, dropped func()) *hub {
	return &hub{viewers: map[*viewer]struct{}{}, max: max, buffer: buffer, dropped: dropped}
}

// subscribe adds a viewer, or returns nil when the hub is full or closed.
func (h *hub) subscribe() *viewer {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.viewers) >= h.max {
		return nil
	}
	v := &viewer{events: make(chan []byte, h.buffer), gone: make(chan struct{})}
	h.viewers[v] = struct{}{}
	return v
}

func (h *hub) unsubscribe(v *viewer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.viewers[v]; ok {
		delete(h.viewers, v)
		close(v.gone)
	}
}

// broadcast queues frame for every viewer.
func (h *hub) broadcast(frame []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for v := range h.viewers {
		select {
		case v.events <- frame:
		default:
			delete(h.viewers, v)
			close(v.gone)
			h.dropped()
		}
	}
}

// close ends every stream and refuses new ones. Event streams never end on
// their own, so a server shutdown would otherwise wait for them in vain.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for v := range h.viewers {
		delete(h.viewers, v)
		close(v.gone)
	}
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.viewers)
}
