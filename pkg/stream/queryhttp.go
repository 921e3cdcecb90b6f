package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// QueryHandler answers interactive queries over HTTP, as JSON, for any key of
// the stores registered with it (ServeKeyValueStore, window.ServeWindowStore),
// on whichever instance of the application receives them: a key hosted by
// another instance is forwarded to that instance's ApplicationServer
// endpoint (which must serve a QueryHandler with the same stores), and a
// range is asked of every instance and merged. Routes (GET):
//
//	/stores/{store}/keys/{key}                  {"key": K, "value": V}; 404 if absent
//	/stores/{store}/range[?from=K&to=K]         {"entries": [{"key": K, "value": V}, ...]}
//	/stores/{store}/keys/{key}/windows?from=MS&to=MS   window stores:
//	                                            {"key": K, "windows": [{"start": MS, "end": MS, "value": V}, ...]}
//
// Keys in paths and parameters are URL-escaped strings, parsed by the
// store's registration. Errors are {"error": "..."} with 400 (bad request),
// 404 (unknown store or key), 503 (no instance hosts the key right now, as
// during a rebalance: retry) or 502 (the hosting instance did not answer).
type QueryHandler struct {
	app    *App
	client *http.Client
	mu     sync.RWMutex
	stores map[string]StoreQuerier
}

// StoreQuerier answers the queries of one store on the local instance for a
// QueryHandler. ServeKeyValueStore and window.ServeWindowStore make them.
type StoreQuerier interface {
	// Store is the name of the state store the keys live in (for
	// QueryMetadataForKey).
	Store() string
	// Key parses a key as it appears in a URL and returns it serialized
	// (the form its partition is computed from).
	Key(s string) ([]byte, error)
	// Get returns the local value of the key; found is false when there is
	// none. A key of a partition this instance does not host is ErrNotLocal.
	Get(key string) (value any, found bool, err error)
	// Range returns the local entries with keys from..to (both inclusive;
	// both empty: every key), in the order of their serialized keys.
	Range(from, to string) ([]QueryEntry, error)
}

// WindowQuerier is a StoreQuerier of a window store.
type WindowQuerier interface {
	StoreQuerier
	// Windows returns the key's windows that start in [from, to], oldest
	// first, as JSON-encodable values.
	Windows(key string, from, to time.Time) ([]any, error)
}

// QueryEntry is one entry of a range answer.
type QueryEntry struct {
	// Key is the entry's key, encoded to JSON as it is.
	Key any `json:"key"`
	// Value is the entry's value, encoded to JSON as it is.
	Value any `json:"value"`
	// Raw is the serialized key (base64 in JSON): instances' answers are
	// merged in its order.
	Raw []byte `json:"raw_key,omitempty"`
}

// hdrForwarded marks a query forwarded by another instance's QueryHandler:
// it is answered locally, never forwarded again.
const hdrForwarded = "X-Stream-Query-Forwarded"

// NewQueryHandler returns a QueryHandler of app's stores (none until
// registered). Forwarded requests use a client with a 5 s timeout.
func NewQueryHandler(app *App) *QueryHandler {
	return &QueryHandler{app: app, client: &http.Client{Timeout: 5 * time.Second}, stores: map[string]StoreQuerier{}}
}

// Register serves q's store under name in the handler's routes.
func (h *QueryHandler) Register(name string, q StoreQuerier) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stores[name] = q
}

// ServeKeyValueStore registers the key-value store named store with h: keys
// in URLs are parsed with parseKey and serialized with keySerde, values
// encoded with encoding/json.
func ServeKeyValueStore[K, V any](h *QueryHandler, store string, keySerde Serde[K], parseKey func(string) (K, error)) {
	h.Register(store, &kvQuerier[K, V]{store: store, ks: keySerde, parse: parseKey, q: QueryStore[K, V](h.app, store, keySerde)})
}

type kvQuerier[K, V any] struct {
	store string
	ks    Serde[K]
	parse func(string) (K, error)
	q     ReadOnlyKeyValueStore[K, V]
}

func (k *kvQuerier[K, V]) Store() string { return k.store }

func (k *kvQuerier[K, V]) Key(s string) ([]byte, error) {
	key, err := k.parse(s)
	if err != nil {
		return nil, err
	}
	return k.ks.Serialize(key)
}

func (k *kvQuerier[K, V]) Get(s string) (any, bool, error) {
	key, err := k.parse(s)
	if err != nil {
		return nil, false, err
	}
	v, found, err := k.q.Get(key)
	return v, found, err
}

func (k *kvQuerier[K, V]) Range(from, to string) ([]QueryEntry, error) {
	var it KeyValueIterator[K, V]
	var err error
	if from == "" && to == "" {
		it, err = k.q.All()
	} else {
		var f, t K
		if f, err = k.parse(from); err != nil {
			return nil, err
		}
		if t, err = k.parse(to); err != nil {
			return nil, err
		}
		it, err = k.q.Range(f, t)
	}
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []QueryEntry
	for it.Next() {
		raw, err := k.ks.Serialize(it.Key())
		if err != nil {
			return nil, err
		}
		out = append(out, QueryEntry{Key: it.Key(), Value: it.Value(), Raw: raw})
	}
	return out, it.Err()
}

// ErrBadQuery marks an error of a query's request (a StoreQuerier returns
// it, wrapped, for a query its store cannot answer): the QueryHandler
// answers 400.
var ErrBadQuery = errors.New("stream: bad query")

// Host is the App whose stores the handler queries, for StoreQuerier
// implementations in other packages (window.ServeWindowStore).
func (h *QueryHandler) Host() StoreHost { return h.app }

// ServeHTTP answers one query (see QueryHandler for the routes).
func (h *QueryHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeQueryError(w, http.StatusMethodNotAllowed, "only GET")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	if len(parts) < 3 || parts[0] != "stores" {
		writeQueryError(w, http.StatusNotFound, "want /stores/{store}/keys/{key}, /stores/{store}/keys/{key}/windows or /stores/{store}/range")
		return
	}
	name, err := url.PathUnescape(parts[1])
	if err != nil {
		writeQueryError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.mu.RLock()
	q := h.stores[name]
	h.mu.RUnlock()
	if q == nil {
		writeQueryError(w, http.StatusNotFound, fmt.Sprintf("unknown store %q", name))
		return
	}
	switch {
	case len(parts) == 3 && parts[2] == "range":
		h.serveRange(w, r, q)
	case parts[2] == "keys" && (len(parts) == 4 || len(parts) == 5 && parts[4] == "windows"):
		key, err := url.PathUnescape(parts[3])
		if err != nil {
			writeQueryError(w, http.StatusBadRequest, err.Error())
			return
		}
		h.serveKey(w, r, q, key, len(parts) == 5)
	default:
		writeQueryError(w, http.StatusNotFound, "unknown route")
	}
}

func (h *QueryHandler) serveKey(w http.ResponseWriter, r *http.Request, q StoreQuerier, key string, windows bool) {
	kb, err := q.Key(key)
	if err != nil {
		writeQueryError(w, http.StatusBadRequest, fmt.Sprintf("key %q: %v", key, err))
		return
	}
	var wq WindowQuerier
	var from, to time.Time
	if windows {
		var ok bool
		if wq, ok = q.(WindowQuerier); !ok {
			writeQueryError(w, http.StatusNotFound, "not a window store")
			return
		}
		if from, to, err = windowBounds(r.URL.Query()); err != nil {
			writeQueryError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	answerLocally := func() {
		if windows {
			ws, err := wq.Windows(key, from, to)
			if err != nil {
				writeQueryErr(w, err)
				return
			}
			writeQueryJSON(w, http.StatusOK, map[string]any{"key": key, "windows": nonNil(ws)})
			return
		}
		v, found, err := q.Get(key)
		switch {
		case err != nil:
			writeQueryErr(w, err)
		case !found:
			writeQueryError(w, http.StatusNotFound, fmt.Sprintf("no value for key %q", key))
		default:
			writeQueryJSON(w, http.StatusOK, map[string]any{"key": key, "value": v})
		}
	}
	if r.Header.Get(hdrForwarded) != "" {
		answerLocally()
		return
	}
	md, err := h.app.keyMetadata(q.Store(), kb)
	if err != nil {
		writeQueryErr(w, err)
		return
	}
	h.app.mu.RLock()
	_, local := h.app.tasks[TaskID{Subtopology: h.subOf(q.Store()), Partition: md.Partition}]
	h.app.mu.RUnlock()
	if local {
		answerLocally()
		return
	}
	if md.Active == "" || md.Active == h.app.Endpoint() {
		writeQueryError(w, http.StatusServiceUnavailable, fmt.Sprintf("no instance hosts partition %d of store %s now; retry", md.Partition, q.Store()))
		return
	}
	h.forward(w, r, md.Active)
}

// subOf returns the sub-topology of store (-1 if none).
func (h *QueryHandler) subOf(store string) int {
	for _, st := range h.app.top.subs {
		if slices.Contains(st.stores, store) {
			return st.id
		}
	}
	return -1
}

// forward sends r to endpoint and copies its answer.
func (h *QueryHandler) forward(w http.ResponseWriter, r *http.Request, endpoint string) {
	resp, err := h.get(r.Context(), endpoint, r.URL.RequestURI())
	if err != nil {
		writeQueryError(w, http.StatusBadGateway, fmt.Sprintf("instance %s: %v", endpoint, err))
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (h *QueryHandler) get(ctx context.Context, endpoint, uri string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+endpoint+uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(hdrForwarded, "1")
	return h.client.Do(req)
}

func (h *QueryHandler) serveRange(w http.ResponseWriter, r *http.Request, q StoreQuerier) {
	from, to := r.URL.Query().Get("from"), r.URL.Query().Get("to")
	if (from == "") != (to == "") {
		writeQueryError(w, http.StatusBadRequest, "give both from and to, or neither")
		return
	}
	local, err := q.Range(from, to)
	if err != nil {
		writeQueryErr(w, err)
		return
	}
	if r.Header.Get(hdrForwarded) != "" {
		writeQueryJSON(w, http.StatusOK, map[string]any{"entries": nonNil(local)})
		return
	}
	// Every other instance answers for its own partitions.
	type remote struct {
		Entries []struct {
			Key   json.RawMessage `json:"key"`
			Value json.RawMessage `json:"value"`
			Raw   []byte          `json:"raw_key"`
		} `json:"entries"`
	}
	all := slices.Clone(local)
	for _, e := range h.app.ActiveEndpoints() {
		if e == h.app.Endpoint() {
			continue
		}
		resp, err := h.get(r.Context(), e, r.URL.RequestURI())
		if err != nil {
			writeQueryError(w, http.StatusBadGateway, fmt.Sprintf("instance %s: %v", e, err))
			return
		}
		var rm remote
		err = json.NewDecoder(resp.Body).Decode(&rm)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if err != nil {
			writeQueryError(w, http.StatusBadGateway, fmt.Sprintf("instance %s: %v", e, err))
			return
		}
		for _, en := range rm.Entries {
			all = append(all, QueryEntry{Key: en.Key, Value: en.Value, Raw: en.Raw})
		}
	}
	slices.SortStableFunc(all, func(a, b QueryEntry) int { return bytes.Compare(a.Raw, b.Raw) })
	for i := range all {
		all[i].Raw = nil
	}
	writeQueryJSON(w, http.StatusOK, map[string]any{"entries": nonNil(all)})
}

// windowBounds reads from and to (Unix ms; defaults: all time).
func windowBounds(v url.Values) (from, to time.Time, err error) {
	from, to = time.UnixMilli(0), time.UnixMilli(1<<62)
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		if s := v.Get(p.name); s != "" {
			ms, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return from, to, fmt.Errorf("%s=%q: want Unix milliseconds", p.name, s)
			}
			*p.t = time.UnixMilli(ms)
		}
	}
	return from, to, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeQueryErr(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotLocal):
		status = http.StatusServiceUnavailable
	case errors.Is(err, ErrStoreNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrBadQuery):
		status = http.StatusBadRequest
	}
	writeQueryError(w, status, err.Error())
}

func writeQueryError(w http.ResponseWriter, status int, msg string) {
	writeQueryJSON(w, status, map[string]string{"error": msg})
}

func writeQueryJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
