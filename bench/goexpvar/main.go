// The Go peer for the scrape benchmark: client_golang's expvar collector reading an app's
// /debug/vars over HTTP, timed from fetch to gathered metrics.
//
//	goexpvar app -listen 127.0.0.1:0         a real Go app: expvar's default payload
//	goexpvar app -body FILE                  the same, serving FILE's bytes instead
//	goexpvar collect -url URL -n 200         time n Gathers, print the median in ms
//
// The collector reads expvar vars of its own process; here each var is a func that
// returns the field of the body fetched once per Gather, so one Gather is one GET,
// one JSON decode per exported key (as the collector does) and the metrics built.
package main

import (
	"encoding/json"
	"expvar"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type remote struct {
	url    string
	client *http.Client
	mu     sync.Mutex
	fields map[string]json.RawMessage
}

func (r *remote) fetch() error {
	resp, err := r.client.Get(r.url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	fields := map[string]json.RawMessage{}
	if err := json.Unmarshal(body, &fields); err != nil {
		return err
	}
	r.mu.Lock()
	r.fields = fields
	r.mu.Unlock()
	return nil
}

func (r *remote) field(name string) func() any {
	return func() any {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.fields[name]
	}
}

// fetching is the expvar collector behind one GET of the app's body per Collect.
type fetching struct {
	r     *remote
	inner prometheus.Collector
}

func (f fetching) Describe(ch chan<- *prometheus.Desc) { f.inner.Describe(ch) }
func (f fetching) Collect(ch chan<- prometheus.Metric) {
	if err := f.r.fetch(); err != nil {
		fmt.Fprintln(os.Stderr, "fetch:", err)
		os.Exit(1)
	}
	f.inner.Collect(ch)
}

func collect(url string, n int) {
	r := &remote{url: url, client: &http.Client{Timeout: 5 * time.Second}}
	if err := r.fetch(); err != nil {
		fmt.Fprintln(os.Stderr, "fetch:", err)
		os.Exit(1)
	}
	exports := map[string]*prometheus.Desc{}
	for name, raw := range r.fields {
		var v any
		_ = json.Unmarshal(raw, &v)
		var labels []string
		if _, ok := v.(map[string]any); ok {
			labels = []string{"key"}
		}
		metric := "expvar_" + sanitize(name)
		// Published under a prefix: this process has its own cmdline and memstats.
		exports["app."+name] = prometheus.NewDesc(metric, "expvar "+name, labels, nil)
		expvar.Publish("app."+name, expvar.Func(r.field(name)))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(fetching{r, prometheus.NewExpvarCollector(exports)})
	times := make([]float64, 0, n)
	series := 0
	for i := 0; i < n+1; i++ {
		start := time.Now()
		families, err := reg.Gather()
		elapsed := time.Since(start)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gather:", err)
			os.Exit(1)
		}
		if i == 0 { // warm-up, as the Python side has
			continue
		}
		times = append(times, float64(elapsed.Microseconds())/1000)
		series = 0
		for _, f := range families {
			series += len(f.Metric)
		}
	}
	sort.Float64s(times)
	fmt.Printf("{\"median_ms\": %.3f, \"series\": %d}\n", times[len(times)/2], series)
}

func sanitize(s string) string {
	out := []byte(s)
	for i, c := range out {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0) {
			out[i] = '_'
		}
	}
	return string(out)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: goexpvar app|collect [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "app: listen address")
	url := fs.String("url", "", "collect: the app's expvar URL")
	n := fs.Int("n", 200, "collect: Gathers to time")
	bodyFile := fs.String("body", "", "app: serve this file at /debug/vars instead")
	_ = fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "app":
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().String())
		if *bodyFile == "" {
			_ = http.Serve(ln, nil) // expvar registers /debug/vars on the default mux
			return
		}
		body, err := os.ReadFile(*bodyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = w.Write(body)
		}))
	case "collect":
		collect(*url, *n)
	default:
		fmt.Fprintln(os.Stderr, "usage: goexpvar app|collect [flags]")
		os.Exit(2)
	}
}
