// Command webhookload posts Alertmanager notifications to the sidecar's POST /alerts
// from concurrent clients and prints each request's latency, for bench/bench_webhook.py.
//
// A Go client, so that on a small machine the load generator costs the sidecar as
// little CPU as possible: its latencies are then the sidecar's, not the client's.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func body(action string, n int) []byte {
	payload := map[string]any{
		"version":  "4",
		"groupKey": fmt.Sprintf("bench/%d", n),
		"alerts": []any{map[string]any{
			"status":      "firing",
			"labels":      map[string]string{"alertname": "BenchLeak", "action": action, "n": fmt.Sprint(n)},
			"annotations": map[string]string{},
			"startsAt":    "2024-01-01T00:00:00Z",
		}},
	}
	out, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	return out
}

func main() {
	url := flag.String("url", "", "the sidecar's POST /alerts URL")
	token := flag.String("token", "", "the bearer token")
	action := flag.String("action", "none", "the alerts' action label")
	first := flag.Int("first", 0, "the first alert's n label")
	count := flag.Int("n", 5000, "deliveries")
	clients := flag.Int("clients", 32, "concurrent clients, one connection each")
	flag.Parse()

	bodies := make([][]byte, *count)
	for i := range bodies {
		bodies[i] = body(*action, *first+i)
	}
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: *clients, MaxConnsPerHost: *clients},
	}
	latencies := make([]float64, *count)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *count || failed.Load() != nil {
					return
				}
				req, _ := http.NewRequest("POST", *url, bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+*token)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Store(err.Error())
					return
				}
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				latencies[i] = time.Since(t0).Seconds()
				if resp.StatusCode != 200 {
					failed.Store(fmt.Sprintf("POST /alerts answered %d: %s", resp.StatusCode, answer))
					return
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start).Seconds()
	if err := failed.Load(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"wall": wall, "latencies": latencies})
}
