// Goroutines across threads, channels, timers and an HTTP round trip on loopback.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	// Goroutines across threads.
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := []int{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sum := 0
			for j := 0; j <= i*1000; j++ {
				sum += j
			}
			mu.Lock()
			results = append(results, sum%1000)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	sort.Ints(results)
	fmt.Println("goroutines:", len(results), results[:5])

	// Channels.
	ch := make(chan int)
	go func() {
		for i := 1; i <= 100; i++ {
			ch <- i
		}
		close(ch)
	}()
	total := 0
	for v := range ch {
		total += v
	}
	fmt.Println("channel total:", total)

	// Timers.
	start := time.Now()
	timer := time.NewTimer(50 * time.Millisecond)
	<-timer.C
	ticks := 0
	ticker := time.NewTicker(10 * time.Millisecond)
	for range ticker.C {
		ticks++
		if ticks == 3 {
			break
		}
	}
	ticker.Stop()
	fmt.Println("timers fired, waited at least 80ms:", time.Since(start) >= 80*time.Millisecond)

	// HTTP round trip on loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Query().Get("name"))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	resp, err := http.Get("http://" + ln.Addr().String() + "/hello?name=km")
	if err != nil {
		fmt.Println("get:", err)
		os.Exit(1)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println("http:", resp.StatusCode, string(body))
	srv.Close()
}
