package server

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/status"
)

// metrics counts the gRPC calls the server answers, by method and code,
// for the Prometheus text endpoint stratad serves when configured.
type metrics struct {
	start time.Time
	mu    sync.Mutex
	calls map[[2]string]uint64 // method, code → count
	secs  map[string]float64   // method → seconds spent
}

func newMetrics() *metrics {
	return &metrics{start: time.Now(), calls: map[[2]string]uint64{}, secs: map[string]float64{}}
}

func (m *metrics) observe(method string, err error, d time.Duration) {
	code := status.Code(err).String()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls[[2]string{method, code}]++
	m.secs[method] += d.Seconds()
}

// MetricsHandler serves the daemon's metrics in Prometheus' text format:
// gRPC calls by method and code, time spent per method, uptime and Go
// runtime figures.
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		s.writeMetrics(w)
	})
}

func (s *Server) writeMetrics(w io.Writer) {
	m := s.metrics
	m.mu.Lock()
	keys := make([][2]string, 0, len(m.calls))
	for k := range m.calls {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+" "+a[1], b[0]+" "+b[1]) })
	fmt.Fprintln(w, "# HELP strata_grpc_requests_total gRPC calls answered, by method and status code.")
	fmt.Fprintln(w, "# TYPE strata_grpc_requests_total counter")
	for _, k := range keys {
		fmt.Fprintf(w, "strata_grpc_requests_total{method=%q,code=%q} %d\n", k[0], k[1], m.calls[k])
	}
	methods := make([]string, 0, len(m.secs))
	for k := range m.secs {
		methods = append(methods, k)
	}
	slices.Sort(methods)
	fmt.Fprintln(w, "# HELP strata_grpc_request_seconds_total Time spent answering gRPC calls, by method.")
	fmt.Fprintln(w, "# TYPE strata_grpc_request_seconds_total counter")
	for _, k := range methods {
		fmt.Fprintf(w, "strata_grpc_request_seconds_total{method=%q} %g\n", k, m.secs[k])
	}
	m.mu.Unlock()
	for _, write := range s.extraMetrics {
		write(w)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(w, "# HELP strata_build_info The daemon's version.\n# TYPE strata_build_info gauge\nstrata_build_info{version=%q,revision=%q} 1\n", s.cfg.Version, s.cfg.Revision)
	fmt.Fprintf(w, "# HELP strata_uptime_seconds Time since the server started.\n# TYPE strata_uptime_seconds gauge\nstrata_uptime_seconds %g\n", time.Since(m.start).Seconds())
	fmt.Fprintf(w, "# HELP go_goroutines Goroutines that exist.\n# TYPE go_goroutines gauge\ngo_goroutines %d\n", runtime.NumGoroutine())
	fmt.Fprintf(w, "# HELP go_memstats_heap_inuse_bytes Heap bytes in use.\n# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes %d\n", ms.HeapInuse)
}
