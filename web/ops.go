package web

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/opscenter/opscenter/store"
)

func (s *Server) healthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

// readyz also checks the database, so a load balancer stops sending people here when
// the log cannot be written.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "database": err.Error()})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "database": "ok"})
}

type httpMetrics struct {
	reg      *prometheus.Registry
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg *prometheus.Registry, st *store.Store) *httpMetrics {
	m := &httpMetrics{
		reg: reg,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "opscenter_http_request_duration_seconds", Help: "HTTP request durations by route.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"method", "route", "status"}),
	}
	reg.MustRegister(m.duration, &dbCollector{st: st})
	return m
}

func (m *httpMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// MetricsHandler serves /metrics for the metrics listener (never the HTTP port:
// the figures name endpoints and their presence). With a token configured, a
// request must carry it as a bearer; the check needs no database, so metrics stay
// readable while PostgreSQL is away.
func (s *Server) MetricsHandler() http.Handler {
	h := s.metrics.handler()
	want := []byte("Bearer " + s.Config.Metrics.Token)
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.Config.Metrics.Token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
	return mux
}

// observe records each request's duration by its route pattern (not the raw path,
// which would make one series per incident id).
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	if route == "/api/v1/events" || route == "/ws" {
		return // long-lived streams would swamp the histogram
	}
	s.metrics.duration.WithLabelValues(c.Request.Method, route, strconv.Itoa(c.Writer.Status())).Observe(time.Since(start).Seconds())
}

// dbCollector reads the pool's statistics and the incident counts at scrape time.
type dbCollector struct{ st *store.Store }

var (
	descPoolTotal = prometheus.NewDesc("opscenter_db_pool_conns", "Database pool connections by state.", []string{"state"}, nil)
	descPoolWait  = prometheus.NewDesc("opscenter_db_pool_acquire_wait_seconds_total", "Time spent waiting for a pool connection.", nil, nil)
	descIncidents = prometheus.NewDesc("opscenter_incidents", "Incidents by status.", []string{"status"}, nil)
	descDBUp      = prometheus.NewDesc("opscenter_db_up", "1 when the database answered the scrape's query.", nil, nil)
)

func (d *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPoolTotal
	ch <- descPoolWait
	ch <- descIncidents
	ch <- descDBUp
}

func (d *dbCollector) Collect(ch chan<- prometheus.Metric) {
	st := d.st.Pool().Stat()
	ch <- prometheus.MustNewConstMetric(descPoolTotal, prometheus.GaugeValue, float64(st.AcquiredConns()), "acquired")
	ch <- prometheus.MustNewConstMetric(descPoolTotal, prometheus.GaugeValue, float64(st.IdleConns()), "idle")
	ch <- prometheus.MustNewConstMetric(descPoolTotal, prometheus.GaugeValue, float64(st.TotalConns()), "total")
	ch <- prometheus.MustNewConstMetric(descPoolWait, prometheus.CounterValue, st.AcquireDuration().Seconds())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := d.st.IncidentCountsByStatus(ctx)
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descDBUp, prometheus.GaugeValue, up)
	for status, n := range counts {
		ch <- prometheus.MustNewConstMetric(descIncidents, prometheus.GaugeValue, float64(n), status)
	}
}
