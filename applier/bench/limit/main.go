// The limit: how fast the API server takes the benchmark's server-side applies when the client
// costs (almost) nothing. One PATCH (application/apply-patch+yaml, JSON body, force) per object
// of kubectl's `-o json` output, N at a time, over HTTP/2 (one multiplexed connection, as
// client-go does) or HTTP/1.1 (N connections, as kube-rs's pool does). Standard library only.
//
//	limit -server URL -ca CA -cert CERT -key KEY -namespace NS -objects LIST.json -n N [-http1]
//
// Prints the wall time in milliseconds from the first request to the last response.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

func main() {
	server := flag.String("server", "", "API server URL")
	ca := flag.String("ca", "", "CA certificate (PEM)")
	cert := flag.String("cert", "", "client certificate (PEM)")
	key := flag.String("key", "", "client key (PEM)")
	ns := flag.String("namespace", "", "namespace to apply into")
	objects := flag.String("objects", "", "the objects as kubectl -o json prints them")
	n := flag.Int("n", 16, "requests in flight")
	http1 := flag.Bool("http1", false, "HTTP/1.1 with N connections instead of HTTP/2")
	flag.Parse()

	// `kubectl create --dry-run=client -o json` prints one object after another (or a List).
	f, err := os.Open(*objects)
	check(err, "read objects")
	var items []json.RawMessage
	dec := json.NewDecoder(f)
	for dec.More() {
		var raw json.RawMessage
		check(dec.Decode(&raw), "parse objects")
		var list struct {
			Kind  string
			Items []json.RawMessage
		}
		check(json.Unmarshal(raw, &list), "parse object")
		if list.Kind == "List" {
			items = append(items, list.Items...)
		} else {
			items = append(items, raw)
		}
	}

	type req struct{ url, body string }
	reqs := make([]req, 0, len(items))
	for _, raw := range items {
		var o object
		check(json.Unmarshal(raw, &o), "parse object")
		// kubectl filled in its context's namespace; the applies go to -namespace.
		var full map[string]any
		check(json.Unmarshal(raw, &full), "parse object")
		full["metadata"].(map[string]any)["namespace"] = *ns
		body, err := json.Marshal(full)
		check(err, "encode object")
		prefix := "/apis/" + o.APIVersion
		if !strings.Contains(o.APIVersion, "/") {
			prefix = "/api/" + o.APIVersion
		}
		// Enough for the kinds the benchmark generates (ConfigMap, Deployment).
		plural := strings.ToLower(o.Kind) + "s"
		reqs = append(reqs, req{
			url:  fmt.Sprintf("%s%s/namespaces/%s/%s/%s?fieldManager=limit&force=true", *server, prefix, *ns, plural, o.Metadata.Name),
			body: string(body),
		})
	}

	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(*ca)
	check(err, "read CA")
	pool.AppendCertsFromPEM(caPEM)
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	check(err, "load client certificate")
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}},
		ForceAttemptHTTP2:   !*http1,
		MaxIdleConnsPerHost: *n,
		MaxConnsPerHost:     0,
	}
	if *http1 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	// Connect (and, for HTTP/1.1, open N connections) before the clock starts, as a long-running
	// client would have.
	var warm sync.WaitGroup
	for i := 0; i < *n; i++ {
		warm.Add(1)
		go func() {
			defer warm.Done()
			resp, err := client.Get(*server + "/version")
			check(err, "GET /version")
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
		if !*http1 {
			warm.Wait()
		}
	}
	warm.Wait()

	work := make(chan req)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	start := time.Now()
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				hr, err := http.NewRequest(http.MethodPatch, r.url, bytes.NewBufferString(r.body))
				check(err, "request")
				hr.Header.Set("Content-Type", "application/apply-patch+yaml")
				hr.Header.Set("Accept", "application/json")
				resp, err := client.Do(hr)
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s: %d %s", r.url, resp.StatusCode, body))
					mu.Unlock()
				}
			}
		}()
	}
	for _, r := range reqs {
		work <- r
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	if len(failures) > 0 {
		fmt.Fprintf(os.Stderr, "%d of %d applies failed, first: %s\n", len(failures), len(reqs), failures[0])
		os.Exit(1)
	}
	fmt.Printf("%d\n", elapsed.Milliseconds())
}

func check(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "limit: %s: %v\n", what, err)
		os.Exit(1)
	}
}
