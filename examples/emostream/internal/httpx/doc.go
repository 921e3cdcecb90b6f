// Package httpx holds the HTTP plumbing EmoStream's components share: a
// server with the timeouts a public endpoint needs and a graceful shutdown,
// JSON replies in the contract's error shape, and health and metrics
// endpoints.
package httpx
