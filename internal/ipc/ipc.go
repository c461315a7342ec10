// Package ipc is the small typed request/response protocol the roles speak
// over unix sockets under /run/sysbox. One connection carries one call: a JSON
// request line, then a JSON response line. Every call has a deadline.
package ipc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// RunDir holds the daemons' sockets.
const RunDir = "/run/sysbox"

// DefaultTimeout bounds a call whose context carries no deadline.
const DefaultTimeout = 10 * time.Second

// ErrNotRunning means nothing listens on the daemon's socket.
var ErrNotRunning = errors.New("daemon not running")

// RemoteError is an error the daemon returned for a call.
type RemoteError struct {
	Method string
	Msg    string
}

func (e *RemoteError) Error() string { return e.Msg }

type request struct {
	Method string          `json:"method"`
	Body   json.RawMessage `json:"body"`
}

type response struct {
	Error string          `json:"error,omitempty"`
	Body  json.RawMessage `json:"body,omitempty"`
}

// Call sends req to the daemon on socket and decodes its answer into a Resp.
func Call[Req, Resp any](ctx context.Context, socket, method string, req Req) (Resp, error) {
	var zero Resp
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || isRefused(err) {
			return zero, fmt.Errorf("%s: %w", socket, ErrNotRunning)
		}
		return zero, fmt.Errorf("connect %s: %w", socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return zero, fmt.Errorf("encode %s request: %w", method, err)
	}
	line, _ := json.Marshal(request{Method: method, Body: body})
	if _, err := conn.Write(append(line, '\n')); err != nil {
		return zero, fmt.Errorf("send %s to %s: %w", method, socket, err)
	}
	var resp response
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&resp); err != nil {
		return zero, fmt.Errorf("read %s answer from %s: %w", method, socket, err)
	}
	if resp.Error != "" {
		return zero, &RemoteError{Method: method, Msg: resp.Error}
	}
	var out Resp
	if len(resp.Body) > 0 {
		if err := json.Unmarshal(resp.Body, &out); err != nil {
			return zero, fmt.Errorf("decode %s answer: %w", method, err)
		}
	}
	return out, nil
}

// Server dispatches calls to typed handlers.
type Server struct {
	mu       sync.RWMutex
	handlers map[string]func(context.Context, json.RawMessage) (any, error)
	// Timeout bounds reading a request and writing its answer.
	Timeout time.Duration
}

// NewServer returns a server with no handlers.
func NewServer() *Server {
	return &Server{handlers: map[string]func(context.Context, json.RawMessage) (any, error){}, Timeout: DefaultTimeout}
}

// Handle registers fn for method.
func Handle[Req, Resp any](s *Server, method string, fn func(context.Context, Req) (Resp, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[method] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var req Req
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &req); err != nil {
				return nil, fmt.Errorf("bad %s request: %w", method, err)
			}
		}
		return fn(ctx, req)
	}
}

// Listen creates the socket (its directory too), replacing a stale one.
func Listen(socket string) (net.Listener, error) {
	// 0711: containers' roots walk through RunDir to their rootfs mounts;
	// the sockets themselves are root-only.
	if err := os.MkdirAll(filepath.Dir(socket), 0o711); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(socket), err)
	}
	if conn, err := net.DialTimeout("unix", socket, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("%s is in use: another instance is running", socket)
	}
	_ = os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", socket, err)
	}
	return ln, nil
}

// Serve answers calls on ln until ctx ends. A bad request gets an error
// answer; it never stops the server.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		go s.serveConn(ctx, conn)
	}
}

func (s *Server) serveConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(s.Timeout))
	var req request
	var resp response
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&req); err != nil {
		resp.Error = fmt.Sprintf("bad request: %v", err)
	} else {
		s.mu.RLock()
		h := s.handlers[req.Method]
		s.mu.RUnlock()
		if h == nil {
			resp.Error = fmt.Sprintf("unknown method %q", req.Method)
		} else {
			out, err := safeCall(ctx, h, req.Body)
			if err != nil {
				resp.Error = err.Error()
				slog.Debug("ipc call failed", "method", req.Method, "err", err)
			} else if out != nil {
				b, err := json.Marshal(out)
				if err != nil {
					resp.Error = fmt.Sprintf("encode answer: %v", err)
				} else {
					resp.Body = b
				}
			}
		}
	}
	line, _ := json.Marshal(resp)
	_, _ = conn.Write(append(line, '\n'))
}

// safeCall keeps a panicking handler from taking the daemon down.
func safeCall(ctx context.Context, h func(context.Context, json.RawMessage) (any, error), body json.RawMessage) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("ipc handler panic", "panic", r)
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return h(ctx, body)
}

func isRefused(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) {
		var se *os.SyscallError
		if errors.As(oe.Err, &se) {
			return se.Syscall == "connect"
		}
	}
	return false
}
