package kafkatest

import (
	"net"
	"testing"

	"github.com/emostream/emostream/pkg/stream/embedded"
)

// RestartableBroker is an in-process embedded broker on a loopback address
// of its own, which a test can stop and start again on the same address:
// empty then, like a broker restarted without its data.
type RestartableBroker struct {
	t     testing.TB
	addr  string
	addrs []string
	b     *embedded.Broker
}

// StartRestartable starts a RestartableBroker on a loopback port that was
// free a moment ago; the end of the test stops it.
func StartRestartable(t testing.TB) *RestartableBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	r := &RestartableBroker{t: t, addr: ln.Addr().String()}
	if err := ln.Close(); err != nil {
		t.Fatalf("freeing port %s: %v", r.addr, err)
	}
	r.Start()
	r.addrs = r.b.Addrs()
	t.Cleanup(func() {
		if r.b != nil {
			_ = r.b.Close()
		}
	})
	return r
}

// Addrs returns the broker's bootstrap addresses, the same across restarts.
func (r *RestartableBroker) Addrs() []string { return append([]string(nil), r.addrs...) }

// Stop stops the broker; its address then refuses connections.
func (r *RestartableBroker) Stop() {
	r.t.Helper()
	if r.b == nil {
		r.t.Fatalf("kafkatest: Stop of a broker that is not running")
	}
	_ = r.b.Close() // always nil
	r.b = nil
}

// Start starts the broker again, empty, on its address. It fails the test
// when the broker runs or the address is taken.
func (r *RestartableBroker) Start() {
	r.t.Helper()
	if r.b != nil {
		r.t.Fatalf("kafkatest: Start of a broker that runs")
	}
	b, err := embedded.Start(embedded.Addr(r.addr))
	if err != nil {
		r.t.Fatalf("starting embedded broker on %s: %v", r.addr, err)
	}
	r.b = b
}
