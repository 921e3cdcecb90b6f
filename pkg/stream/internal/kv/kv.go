// Package kv provides byte-level ordered key-value backends for the typed
// state stores of the stream runtime.
//
// Keys are ordered with bytes.Compare. Two backends implement Store: an
// in-memory B-tree (NewMemory) and an on-disk Pebble database (OpenPebble).
// Typed stores encode their keys so that this byte order matches the order
// they want to expose, which keeps the backends free of any serde concerns.
package kv

import (
	"bytes"
	"errors"
)

// ErrClosed is returned by every Store method called after Close, and by
// iterators that were still open when their Store was closed.
var ErrClosed = errors.New("stream: store closed")

// Store is an ordered byte key-value store owned by one stream task.
//
// The task is the only writer, but Get and Range may be called concurrently
// from other goroutines (interactive queries), so implementations are safe
// for concurrent use.
type Store interface {
	// Get returns the value stored under key and whether it exists. The
	// returned value is a copy the caller may keep and modify.
	Get(key []byte) ([]byte, bool, error)
	// Put stores value under key, replacing any previous value. The store
	// copies both slices, so the caller may reuse them afterwards.
	Put(key, value []byte) error
	// GetShared is Get without the copy where the backend can avoid one:
	// the caller must not modify the returned value.
	GetShared(key []byte) ([]byte, bool, error)
	// PutOwned is Put that may keep key and value themselves instead of
	// copies: the caller must not modify either afterwards. When value
	// directly follows key in one array (key = b[:n], value = b[n:]), the
	// memory backend keeps that array as the entry's only allocation.
	PutOwned(key, value []byte) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(key []byte) error
	// Range returns an iterator over the keys in [from, to) in ascending
	// order. A nil from starts at the first key and a nil to runs to the
	// last one. The iterator reads a point-in-time snapshot taken when Range
	// is called, so writes made while it is open are not visible to it. The
	// caller must Close the iterator.
	Range(from, to []byte) (Iterator, error)
	// ApproximateLen returns the number of live keys. It is exact for the
	// memory backend and may lag behind recent writes for Pebble.
	ApproximateLen() int64
	// Flush makes all writes so far durable. It is a no-op for the memory
	// backend.
	Flush() error
	// Close releases all resources. Iterators still open become invalid
	// (Next returns false and Err returns ErrClosed). Every later call on the
	// store, including Close, returns ErrClosed.
	Close() error
}

// Iterator walks the entries selected by Store.Range. It starts before the
// first entry, so Next must be called before Key or Value.
//
// An Iterator is not safe for concurrent use by several goroutines, but it
// may be used while other goroutines write to the Store.
type Iterator interface {
	// Next advances to the next entry and reports whether there is one. It
	// returns false at the end of the range or on error; check Err.
	Next() bool
	// Key returns the current key. The slice must not be modified and is
	// only valid until the next call to Next or Close; copy it to keep it.
	Key() []byte
	// Value returns the current value, with the same validity rules as Key.
	Value() []byte
	// Err returns the error that stopped the iteration, if any.
	Err() error
	// Close releases the iterator. Calling it more than once is harmless.
	Close() error
}

// emptyRange reports whether [from, to) cannot contain any key. Checking this
// up front matters for Pebble, which rejects a lower bound above the upper
// bound instead of returning nothing.
func emptyRange(from, to []byte) bool {
	if to == nil {
		return false
	}
	return len(to) == 0 || bytes.Compare(from, to) >= 0
}

// cloneBytes copies b, keeping the distinction between nil and empty so a
// stored empty value round-trips as a non-nil empty slice.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// emptyIter is returned for ranges that are known to be empty, avoiding a
// snapshot or a Pebble iterator for nothing.
type emptyIter struct{}

func (emptyIter) Next() bool    { return false }
func (emptyIter) Key() []byte   { return nil }
func (emptyIter) Value() []byte { return nil }
func (emptyIter) Err() error    { return nil }
func (emptyIter) Close() error  { return nil }
