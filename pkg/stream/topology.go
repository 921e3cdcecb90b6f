package stream

import (
	"fmt"
	"sort"
	"strings"
)

type nodeKind int

const (
	kindSource nodeKind = iota
	kindProcessor
	kindSink
)

// node is one vertex of the processor graph. Its build function creates the
// typed per-task instance; children are passed in already built, as typed
// input functions hidden behind any.
type node struct {
	name     string
	kind     nodeKind
	parents  []*node
	children []*node
	topic    string // source or sink topic
	internal bool   // topic is a repartition topic, prefixed with the application id at run time
	stores   []string
	sub      int
	// keyChanged is true when the key may differ from the source's partitioning key.
	keyChanged bool
	build      func(t *task, children []any, childNames []string) (input any, closer func() error, err error)
}

// Builder collects sources, processors, sinks and stores, then builds an
// immutable Topology. Use it from one goroutine.
type Builder struct {
	nodes    []*node
	stores   map[string]*storeSpec
	storeSeq []string
	seq      int
	errs     []error
	sources  map[string]*node
	globals  []*globalSpec
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{stores: map[string]*storeSpec{}, sources: map[string]*node{}}
}

func (b *Builder) newName(prefix string) string {
	n := fmt.Sprintf("%s-%010d", prefix, b.seq)
	b.seq++
	return n
}

func (b *Builder) fail(err error) { b.errs = append(b.errs, err) }

// NewName returns a node name unique in this builder, made from prefix and a
// sequence number (KSTREAM-FILTER-0000000003): the same topology code always
// yields the same names, so internal topic names are stable across restarts.
func (b *Builder) NewName(prefix string) string { return b.newName(prefix) }

// ReportError records a problem found while adding to the topology (by an
// extension such as package window); Build returns the first one.
func (b *Builder) ReportError(err error) { b.fail(err) }

func (b *Builder) add(n *node, parents ...*node) *node {
	for _, p := range parents {
		p.children = append(p.children, n)
		n.parents = append(n.parents, p)
	}
	b.nodes = append(b.nodes, n)
	return n
}

// AddStore registers a state store so processors can name it in Process.
func (b *Builder) AddStore(sb StoreBuilder) {
	s := sb.spec()
	if _, dup := b.stores[s.name]; dup {
		b.fail(fmt.Errorf("%w: store %q added twice", ErrInvalidTopology, s.name))
		return
	}
	b.stores[s.name] = s
	b.storeSeq = append(b.storeSeq, s.name)
}

// Topology is a built processor graph, split into sub-topologies that are
// connected only through (repartition) topics. It is immutable and may be run by
// several Apps.
type Topology struct {
	nodes  []*node
	subs   []*subtopology
	stores map[string]*storeSpec
	byName map[string]*node
	// globals are the global tables (GlobalTableSource).
	globals []*globalSpec
}

type subtopology struct {
	id      int
	nodes   []*node // parents before children
	sources []*node
	stores  []string
}

// Build validates the graph and returns the Topology.
func (b *Builder) Build() (*Topology, error) {
	if len(b.errs) > 0 {
		return nil, b.errs[0]
	}
	if len(b.sources) == 0 {
		return nil, fmt.Errorf("%w: no sources", ErrInvalidTopology)
	}
	if err := b.checkLoops(); err != nil {
		return nil, err
	}
	for _, g := range b.globals {
		if _, ok := b.sources[g.topic]; ok {
			return nil, fmt.Errorf("%w: topic %q is read both as a global table and by a source", ErrInvalidTopology, g.topic)
		}
	}
	t := &Topology{nodes: b.nodes, stores: b.stores, byName: map[string]*node{}, globals: b.globals}
	// Union-find over graph edges and shared stores gives the sub-topologies.
	parent := map[*node]*node{}
	var find func(n *node) *node
	find = func(n *node) *node {
		if parent[n] == nil || parent[n] == n {
			parent[n] = n
			return n
		}
		r := find(parent[n])
		parent[n] = r
		return r
	}
	union := func(a, c *node) { parent[find(a)] = find(c) }
	storeOwner := map[string]*node{}
	for _, n := range b.nodes {
		if _, dup := t.byName[n.name]; dup {
			return nil, fmt.Errorf("%w: node name %q used twice", ErrInvalidTopology, n.name)
		}
		t.byName[n.name] = n
		find(n)
		for _, c := range n.children {
			union(n, c)
		}
		for _, s := range n.stores {
			if _, ok := b.stores[s]; !ok {
				return nil, fmt.Errorf("%w: node %s uses unknown store %q", ErrInvalidTopology, n.name, s)
			}
			if o, ok := storeOwner[s]; ok {
				union(n, o)
			} else {
				storeOwner[s] = n
			}
		}
	}
	// Number sub-topologies in the order their first node was added, as Kafka
	// Streams does, so Describe is stable.
	ids := map[*node]int{}
	for _, n := range b.nodes {
		r := find(n)
		id, ok := ids[r]
		if !ok {
			id = len(t.subs)
			ids[r] = id
			t.subs = append(t.subs, &subtopology{id: id})
		}
		n.sub = id
		st := t.subs[id]
		st.nodes = append(st.nodes, n)
		if n.kind == kindSource {
			st.sources = append(st.sources, n)
		}
	}
	for _, s := range b.storeSeq {
		if o, ok := storeOwner[s]; ok {
			st := t.subs[o.sub]
			st.stores = append(st.stores, s)
		}
	}
	for _, st := range t.subs {
		if len(st.sources) == 0 {
			return nil, fmt.Errorf("%w: sub-topology %d has no source", ErrInvalidTopology, st.id)
		}
	}
	return t, nil
}

// checkLoops rejects a topology in which records written by a sink come
// back to that sink through the topics the topology reads (a sink writing its
// own source topic, or two sub-topologies feeding each other): every record
// would be processed again and again.
func (b *Builder) checkLoops() error {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[*node]int{}
	var path []*node
	var visit func(n *node) error
	visit = func(n *node) error {
		state[n] = onPath
		path = append(path, n)
		defer func() { path = path[:len(path)-1] }()
		next := n.children
		if n.kind == kindSink {
			if src, ok := b.sources[n.topic]; ok {
				next = []*node{src}
			}
		}
		for _, c := range next {
			switch state[c] {
			case onPath:
				return loopError(append(path, c))
			case unseen:
				if err := visit(c); err != nil {
					return err
				}
			}
		}
		state[n] = done
		return nil
	}
	for _, n := range b.nodes {
		if state[n] == unseen {
			if err := visit(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// loopError describes the cycle at the end of path (which ends with the
// node the cycle returns to), naming a sink on it and the topic it writes.
func loopError(path []*node) error {
	back := path[len(path)-1]
	start := 0
	for i, n := range path[:len(path)-1] {
		if n == back {
			start = i
		}
	}
	names := make([]string, 0, len(path)-start)
	var sink *node
	for _, n := range path[start:] {
		names = append(names, n.name)
		if n.kind == kindSink && sink == nil {
			sink = n
		}
	}
	return fmt.Errorf("%w: sink %s writes topic %q, which the topology reads again upstream of it (%s): its records would loop forever",
		ErrInvalidTopology, sink.name, sink.topic, strings.Join(names, " -> "))
}

func (t *Topology) changelogTopic(appID, store string) string {
	return appID + "-" + store + "-changelog"
}

func resolveTopic(appID string, n *node) string {
	if n.internal {
		return appID + "-" + n.topic
	}
	return n.topic
}

// Describe prints the topology in the text form Kafka Streams uses.
func (t *Topology) Describe() string {
	var sb strings.Builder
	sb.WriteString("Topologies:\n")
	for _, st := range t.subs {
		fmt.Fprintf(&sb, "   Sub-topology: %d\n", st.id)
		for _, n := range st.nodes {
			switch n.kind {
			case kindSource:
				fmt.Fprintf(&sb, "    Source: %s (topics: [%s])\n", n.name, n.topic)
			case kindSink:
				fmt.Fprintf(&sb, "    Sink: %s (topic: %s)\n", n.name, n.topic)
			default:
				fmt.Fprintf(&sb, "    Processor: %s (stores: [%s])\n", n.name, strings.Join(n.stores, ", "))
			}
			if len(n.children) > 0 {
				fmt.Fprintf(&sb, "      --> %s\n", joinNames(n.children))
			} else {
				sb.WriteString("      --> none\n")
			}
			if len(n.parents) > 0 {
				fmt.Fprintf(&sb, "      <-- %s\n", joinNames(n.parents))
			} else {
				sb.WriteString("      <-- none\n")
			}
		}
		sb.WriteString("\n")
	}
	for _, g := range t.globals {
		fmt.Fprintf(&sb, "   Global store: %s (topic: %s)\n\n", g.store, g.topic)
	}
	return sb.String()
}

// DescribeMermaid prints the topology as a Mermaid flowchart: one subgraph per
// sub-topology, topics as rounded nodes, stores as cylinders.
func (t *Topology) DescribeMermaid() string {
	var sb strings.Builder
	sb.WriteString("flowchart LR\n")
	id := func(s string) string { return strings.NewReplacer("-", "_", ".", "_").Replace(s) }
	topics := map[string]bool{}
	for _, st := range t.subs {
		fmt.Fprintf(&sb, "  subgraph sub%d [Sub-topology %d]\n", st.id, st.id)
		for _, n := range st.nodes {
			fmt.Fprintf(&sb, "    %s[\"%s\"]\n", id(n.name), n.name)
		}
		for _, s := range st.stores {
			fmt.Fprintf(&sb, "    store_%s[(\"%s\")]\n", id(s), s)
		}
		sb.WriteString("  end\n")
	}
	for _, n := range t.nodes {
		if n.kind != kindProcessor {
			if !topics[n.topic] {
				topics[n.topic] = true
				fmt.Fprintf(&sb, "  topic_%s([\"%s\"])\n", id(n.topic), n.topic)
			}
		}
		switch n.kind {
		case kindSource:
			fmt.Fprintf(&sb, "  topic_%s --> %s\n", id(n.topic), id(n.name))
		case kindSink:
			fmt.Fprintf(&sb, "  %s --> topic_%s\n", id(n.name), id(n.topic))
		}
		for _, c := range n.children {
			fmt.Fprintf(&sb, "  %s --> %s\n", id(n.name), id(c.name))
		}
		for _, s := range n.stores {
			fmt.Fprintf(&sb, "  %s -.- store_%s\n", id(n.name), id(s))
		}
	}
	return sb.String()
}

func joinNames(ns []*node) string {
	names := make([]string, len(ns))
	for i, n := range ns {
		names[i] = n.name
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
