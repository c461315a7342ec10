// Command procread times open+read+close of files, for make bench: it runs
// inside containers (static, no cgo) and prints p50 and p99 per file in
// microseconds, one line each: "PATH p50 p99".
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 2000, "reads per file")
	flag.Parse()
	buf := make([]byte, 64<<10)
	for _, path := range flag.Args() {
		times := make([]time.Duration, 0, *n)
		for i := 0; i < *n+50; i++ {
			start := time.Now()
			fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				fmt.Fprintf(os.Stderr, "procread: %s: %v\n", path, err)
				os.Exit(1)
			}
			for {
				k, err := syscall.Read(fd, buf)
				if err != nil {
					fmt.Fprintf(os.Stderr, "procread: read %s: %v\n", path, err)
					os.Exit(1)
				}
				if k == 0 {
					break
				}
			}
			syscall.Close(fd)
			if i >= 50 { // warm-up reads are not counted
				times = append(times, time.Since(start))
			}
		}
		slices.Sort(times)
		p := func(q float64) float64 { return float64(times[int(q*float64(len(times)-1))].Nanoseconds()) / 1000 }
		fmt.Printf("%s %.1f %.1f\n", path, p(0.5), p(0.99))
	}
}
