package export

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// ServerOptions configures the daemon's HTTP server.
type ServerOptions struct {
	Gatherer prometheus.Gatherer
	// Healthy answers /healthz: nil error is 200 "ok", else 503.
	Healthy  func() error
	Version  string
	ErrorLog slog.Handler // promhttp's errors; nil: discarded
}

// NewServer builds the daemon's HTTP server: /metrics, /healthz and the
// landing page.
func NewServer(o ServerOptions) (*http.Server, error) {
	mux := http.NewServeMux()
	hopts := promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}
	if o.ErrorLog != nil {
		hopts.ErrorLog = slog.NewLogLogger(o.ErrorLog, slog.LevelError)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(o.Gatherer, hopts))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if o.Healthy != nil {
			if err := o.Healthy(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name: "ktracer", Description: "Kernel module and initcall tracing with eBPF", Version: o.Version,
		Links: []web.LandingLinks{{Address: "/metrics", Text: "Metrics"}, {Address: "/healthz", Text: "Health"}},
	})
	if err != nil {
		return nil, fmt.Errorf("landing page: %w", err)
	}
	mux.Handle("/", landing)
	lim := &connLimit{max: MaxConnections, conns: map[string]*trackedConn{}}
	srv := &http.Server{
		Handler: mux,
		// A client that connects and says nothing, or reads an answer
		// slowly, holds a connection: each phase has a deadline.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ConnState:         lim.track,
	}
	limits.Store(srv, lim)
	return srv, nil
}

// MaxConnections bounds the connections the server holds open (and so its
// open files and the memory per connection). A Prometheus needs one or two.
const MaxConnections = 64

// limits maps a server from NewServer to its connection limit, which
// ServerListeners applies.
var limits sync.Map // *http.Server -> *connLimit

// ServerListeners wraps listeners with srv's connection limit (srv must
// come from NewServer). At the limit, a new connection evicts the
// connection idle the longest (a keep-alive between requests, or one that
// has sent nothing for a second), so idle connections from a local user
// cannot lock scrapes out; when every connection is busy, the new one is
// closed at once.
func ServerListeners(srv *http.Server, ls []net.Listener) []net.Listener {
	v, ok := limits.Load(srv)
	if !ok {
		return ls
	}
	out := make([]net.Listener, len(ls))
	for i, l := range ls {
		out[i] = &limitedListener{Listener: l, lim: v.(*connLimit)}
	}
	return out
}

type connLimit struct {
	max   int
	mu    sync.Mutex
	conns map[string]*trackedConn // by local and remote address
}

type trackedConn struct {
	c     net.Conn
	state http.ConnState
	since time.Time
}

func connKey(c net.Conn) string { return c.LocalAddr().String() + "|" + c.RemoteAddr().String() }

// track is the server's ConnState hook. Its conn may be a TLS wrapper of
// the accepted one, hence the key by addresses.
func (l *connLimit) track(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := connKey(c)
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, k)
	default:
		if tc := l.conns[k]; tc != nil {
			tc.state, tc.since = st, time.Now()
		}
	}
}

// admit makes room for c, or says it cannot.
func (l *connLimit) admit(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.max {
		var victim string
		var oldest time.Time
		now := time.Now()
		for k, tc := range l.conns {
			evictable := tc.state == http.StateIdle || (tc.state == http.StateNew && now.Sub(tc.since) > time.Second)
			if evictable && (victim == "" || tc.since.Before(oldest)) {
				victim, oldest = k, tc.since
			}
		}
		if victim == "" {
			return false
		}
		l.conns[victim].c.Close()
		delete(l.conns, victim)
	}
	l.conns[connKey(c)] = &trackedConn{c: c, state: http.StateNew, since: time.Now()}
	return true
}

type limitedListener struct {
	net.Listener
	lim *connLimit
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.lim.admit(c) {
			return c, nil
		}
		c.Close()
	}
}
