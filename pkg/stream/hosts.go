package stream

// Which instance hosts what: each instance may advertise an endpoint
// (ApplicationServer) in its join metadata; the group leader sends every
// member, with its assignment, the endpoints of all active and standby
// tasks, so any instance can tell where a key of a store lives (Kafka
// Streams' queryMetadataForKey) and forward a query there (QueryHandler).

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
)

// ApplicationServer makes the instance advertise endpoint ("host:port",
// Kafka Streams' application.server) to the other instances of the
// application, for interactive queries across instances: QueryMetadataForKey
// then names it as the host of its tasks' keys and a QueryHandler of another
// instance forwards those keys' queries to it. Serve a QueryHandler there.
func ApplicationServer(endpoint string) Opt {
	return optFunc(func(c *config) { c.group.endpoint = endpoint })
}

// checkEndpoint validates an ApplicationServer endpoint.
func checkEndpoint(endpoint string) error {
	if endpoint == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(endpoint)
	if err == nil && host == "" {
		err = fmt.Errorf("no host")
	}
	if err == nil {
		if n, perr := strconv.Atoi(port); perr != nil || n <= 0 || n > 65535 {
			err = fmt.Errorf("bad port %q", port)
		}
	}
	if err != nil {
		return fmt.Errorf("ApplicationServer %q: want host:port (%v)", endpoint, err)
	}
	return nil
}

// KeyQueryMetadata tells where a key of a store is hosted (Kafka Streams'
// KeyQueryMetadata).
type KeyQueryMetadata struct {
	// Active is the endpoint (ApplicationServer) of the instance running the
	// key's task; empty while no instance with an endpoint runs it (during
	// a rebalance, for instance: ask again).
	Active string
	// Standbys are the endpoints of the instances keeping standby copies of
	// the key's task (their answers may lag the active one).
	Standbys []string
	// Partition is the key's partition (murmur2 of the serialized key, as
	// the producer and repartition topics place it).
	Partition int32
}

// hostMap is what the last assignment said about every task's hosts.
type hostMap struct {
	mu      sync.RWMutex
	known   bool // an assignment arrived
	active  map[TaskID]string
	standby map[TaskID][]string
}

func (h *hostMap) set(active map[TaskID]string, standby map[TaskID][]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.active, h.standby, h.known = active, standby, true
}

func (h *hostMap) ready() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.known
}

func (h *hostMap) get(t TaskID) (string, []string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.active[t], slices.Clone(h.standby[t])
}

// endpoints returns every endpoint that hosts an active task.
func (h *hostMap) endpoints() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	seen := map[string]bool{}
	var out []string
	for _, e := range h.active {
		if e != "" && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out
}

// encodeHosts turns a plan's endpoints into the assignment's form:
// endpoint -> task keys.
func encodeHosts(byTask map[TaskID]string) map[string][]string {
	out := map[string][]string{}
	for t, e := range byTask {
		out[e] = append(out[e], taskKey(t))
	}
	for _, ks := range out {
		slices.Sort(ks)
	}
	return out
}

// decodeHosts reads encodeHosts' form back.
func decodeHosts(in map[string][]string) map[TaskID][]string {
	out := map[TaskID][]string{}
	for e, ks := range in {
		for _, k := range ks {
			if t, ok := parseTaskKey(k); ok {
				out[t] = append(out[t], e)
			}
		}
	}
	return out
}

// QueryMetadataForKey tells which instance hosts key in store (Kafka
// Streams' KafkaStreams.queryMetadataForKey): the key's partition, the
// endpoint of the instance running its task and those keeping standby
// copies. It needs the instances to advertise endpoints (ApplicationServer)
// and the app to have joined its group; it assumes the store is keyed
// like its task's input (the key partitioned with murmur2 on its serialized
// form), which holds for aggregations, tables read from topics written by
// Kafka clients with their default partitioner, and repartitioned streams.
func QueryMetadataForKey[K any](a *App, store string, key K, keySerde Serde[K]) (KeyQueryMetadata, error) {
	kb, err := keySerde.Serialize(key)
	if err != nil {
		return KeyQueryMetadata{}, err
	}
	return a.keyMetadata(store, kb)
}

func (a *App) keyMetadata(store string, kb []byte) (KeyQueryMetadata, error) {
	var sub *subtopology
	for _, st := range a.top.subs {
		if slices.Contains(st.stores, store) {
			sub = st
		}
	}
	if sub == nil {
		return KeyQueryMetadata{}, fmt.Errorf("%w: %q", ErrStoreNotFound, store)
	}
	if !a.hosts.ready() {
		// (The assignment comes after the client is made: reading a.client
		// is safe from here on.)
		return KeyQueryMetadata{}, fmt.Errorf("%w: the application has no assignment yet", ErrNotLocal)
	}
	n, err := a.partitions(resolveTopic(a.cfg.appID, sub.sources[0]))
	if err != nil {
		return KeyQueryMetadata{}, err
	}
	md := KeyQueryMetadata{Partition: partitionFor(kb, n)}
	t := TaskID{Subtopology: sub.id, Partition: md.Partition}
	md.Active, md.Standbys = a.hosts.get(t)
	a.mu.RLock()
	_, local := a.tasks[t]
	a.mu.RUnlock()
	if local && a.cfg.group.endpoint != "" {
		md.Active = a.cfg.group.endpoint
	}
	return md, nil
}

// Endpoint is the instance's ApplicationServer endpoint ("" without one).
func (a *App) Endpoint() string { return a.cfg.group.endpoint }

// ActiveEndpoints are the endpoints of the instances that run tasks, as of
// the last assignment (this one's included when it runs any).
func (a *App) ActiveEndpoints() []string { return a.hosts.endpoints() }
