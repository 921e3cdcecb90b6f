package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawTarget is where a [rawConn] sends its requests.
type rawTarget struct {
	addr    string // host:port to dial
	host    string // Host header
	path    string // request target
	timeout time.Duration
}

// newRawTarget prepares plain-HTTP requests to endpoint; it returns nil for
// an https endpoint, which the net/http client handles.
func newRawTarget(endpoint string, timeout time.Duration) *rawTarget {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" {
		return nil
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &rawTarget{addr: addr, host: u.Host, path: u.RequestURI(), timeout: timeout}
}

// rawConn is one client's keep-alive HTTP/1.1 connection. It writes a POST
// with a single system call from a reused buffer and reads the answer in
// the calling goroutine. net/http's client spends a reader and a writer
// goroutine per connection, header maps and a few dozen allocations per
// request; on a machine the load client shares with the server it loads,
// that cost about as much CPU as the API's own work per request, so the
// load client, not the server, set the single-POST rate.
//
// It speaks just enough HTTP/1.1 for that: Content-Length and chunked
// answers, "Connection: close", informational (1xx) answers. A connection
// that fails is closed and redialled on the next request; a failed POST is
// not retried (it may have been written to Kafka), as with net/http.
type rawConn struct {
	t    *rawTarget
	ctx  context.Context
	conn net.Conn
	br   *bufio.Reader
	req  []byte
	stop func() bool // unregisters the context watch of conn
}

func (t *rawTarget) newConn(ctx context.Context) *rawConn { return &rawConn{t: t, ctx: ctx} }

// errStatusLine reports an answer that is not HTTP/1.x.
var errStatusLine = errors.New("load: malformed HTTP status line")

// longAgo is a deadline in the past: it makes blocked reads and writes
// return at once.
var longAgo = time.Unix(1, 0)

func (c *rawConn) dial() error {
	d := net.Dialer{Timeout: c.t.timeout}
	conn, err := d.DialContext(c.ctx, "tcp", c.t.addr)
	if err != nil {
		return err
	}
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 4096)
	} else {
		c.br.Reset(conn)
	}
	// The end of the run interrupts a request under way, as cancelling a
	// net/http request does.
	c.stop = context.AfterFunc(c.ctx, func() { _ = conn.SetDeadline(longAgo) })
	return nil
}

func (c *rawConn) close() {
	if c.conn == nil {
		return
	}
	c.stop()
	_ = c.conn.Close()
	c.conn = nil
}

// post sends body as a JSON POST and returns the answer's status code once
// the whole answer is read.
func (c *rawConn) post(body []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return 0, err
		}
	}
	status, keep, err := c.roundTrip(body)
	if err != nil || !keep {
		c.close()
	}
	if err != nil && status >= 200 {
		// The answer's status arrived; only its body did not (the run ended,
		// or the server hung up). The status is the answer, as with net/http.
		return status, nil
	}
	if err != nil && c.ctx.Err() != nil {
		err = c.ctx.Err()
	}
	return status, err
}

func (c *rawConn) roundTrip(body []byte) (status int, keep bool, err error) {
	_ = c.conn.SetDeadline(time.Now().Add(c.t.timeout))
	if c.ctx.Err() != nil { // cancelled before the deadline was set
		return 0, false, c.ctx.Err()
	}
	c.req = append(c.req[:0], "POST "...)
	c.req = append(c.req, c.t.path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.t.host...)
	c.req = append(c.req, "\r\nUser-Agent: emostream-load\r\nContent-Type: application/json\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(body)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, body...)
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, false, err
	}
	for {
		status, keep, err = c.readResponse()
		if err != nil || status >= 200 || status == 101 {
			return status, keep, err
		}
		// 1xx informational: the real answer follows.
	}
}

// readResponse reads one answer, discarding its body, and reports whether
// the connection can carry the next request. Once the status line is read,
// the status is returned even with an error.
func (c *rawConn) readResponse() (status int, keep bool, err error) {
	line, err := c.readLine()
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 202 Accepted"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("%w: %q", errStatusLine, line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 {
		return 0, false, fmt.Errorf("%w: %q", errStatusLine, line)
	}
	keep = line[7] == '1' // HTTP/1.1 keeps the connection by default
	length, chunked := int64(-1), false
	for {
		h, err := c.readLine()
		if err != nil {
			return status, false, err
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return status, false, fmt.Errorf("load: malformed HTTP header %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return status, false, fmt.Errorf("load: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	switch {
	case status < 200 || status == 204 || status == 304:
		return status, keep, nil // no body
	case chunked:
		return status, keep, c.discardChunked()
	case length >= 0:
		_, err := c.br.Discard(int(length))
		return status, keep, err
	default:
		// No length: the body ends when the server closes.
		_, err := io.Copy(io.Discard, c.br)
		return status, false, err
	}
}

// readLine returns the next CRLF- (or LF-) terminated line without its end;
// it is valid until the next read.
func (c *rawConn) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errors.New("load: HTTP line too long")
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

func (c *rawConn) discardChunked() error {
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("load: bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, up to the empty line
				t, err := c.readLine()
				if err != nil || len(t) == 0 {
					return err
				}
			}
		}
		if _, err := c.br.Discard(int(n)); err != nil {
			return err
		}
		if l, err := c.readLine(); err != nil || len(l) != 0 {
			return fmt.Errorf("load: chunk not followed by CRLF: %v", err)
		}
	}
}
