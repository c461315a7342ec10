// Command procread reads /proc and /sys files the way programs do, from
// inside containers (static, no cgo). Three modes:
//
//	procread [-n N] FILE...          open+read+close latency (make bench):
//	                                 "PATH p50 p99" in microseconds, a line each
//	procread -check FILE...          what read(2) and sendfile(2) give:
//	                                 "PATH read=BYTES sendfile=ok|einval|empty|cut|nul|error"
//	procread -load D -readers N FILE...
//	                                 N threads loop over the files for D, reading
//	                                 with read(2) and every third time with
//	                                 sendfile(2) (falling back to read(2) on
//	                                 EINVAL, as busybox does); prints
//	                                 "reads R errors E" and exits 1 on any error
//
// -check and -load call a content wrong if it is empty (diskstats may be),
// holds a NUL byte or does not end in a newline.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 2000, "reads per file (latency mode)")
	check := flag.Bool("check", false, "compare read(2) and sendfile(2) per file")
	load := flag.Duration("load", 0, "loop over the files for this long")
	readers := flag.Int("readers", 4, "threads in -load mode")
	flag.Parse()
	switch {
	case *check:
		os.Exit(checkFiles(flag.Args()))
	case *load > 0:
		os.Exit(loadFiles(flag.Args(), *load, *readers))
	}
	latency(flag.Args(), *n)
}

func latency(files []string, n int) {
	buf := make([]byte, 64<<10)
	for _, path := range files {
		times := make([]time.Duration, 0, n)
		for i := 0; i < n+50; i++ {
			start := time.Now()
			if _, err := read(path, buf, false); err != nil {
				fmt.Fprintf(os.Stderr, "procread: %v\n", err)
				os.Exit(1)
			}
			if i >= 50 { // warm-up reads are not counted
				times = append(times, time.Since(start))
			}
		}
		slices.Sort(times)
		p := func(q float64) float64 { return float64(times[int(q*float64(len(times)-1))].Nanoseconds()) / 1000 }
		fmt.Printf("%s %.1f %.1f\n", path, p(0.5), p(0.99))
	}
}

// readAll is open, read to EOF, close: raw syscalls, as C programs do.
func readAll(path string, buf []byte) ([]byte, error) { return read(path, buf, true) }

// read reads path to EOF through buf, keeping what it read or, for the
// latency mode, nothing (no allocation in the timed loop).
func read(path string, buf []byte, keep bool) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer syscall.Close(fd)
	var out []byte
	for {
		k, err := syscall.Read(fd, buf)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if k == 0 {
			return out, nil
		}
		if keep {
			out = append(out, buf[:k]...)
		}
	}
}

// errRefused: sendfile(2) failed with EINVAL before copying anything.
var errRefused = errors.New("sendfile refused (EINVAL)")

// sendfileAll copies path through a pipe with sendfile(2).
func sendfileAll(path string, buf []byte) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer syscall.Close(fd)
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return nil, err
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	var out []byte
	for {
		k, err := syscall.Sendfile(p[1], fd, nil, len(buf))
		if errors.Is(err, syscall.EINVAL) && len(out) == 0 {
			return nil, errRefused
		}
		if err != nil {
			return out, fmt.Errorf("sendfile %s: %w", path, err)
		}
		if k == 0 {
			return out, nil
		}
		r, err := syscall.Read(p[0], buf)
		if err != nil {
			return out, err
		}
		out = append(out, buf[:r]...)
	}
}

// wrong says what is wrong with a file's content, or "".
func wrong(path string, b []byte) string {
	switch {
	case len(b) == 0 && !strings.HasSuffix(path, "diskstats"):
		return "empty"
	case bytes.IndexByte(b, 0) >= 0:
		return "nul"
	case len(b) > 0 && b[len(b)-1] != '\n':
		return "cut"
	}
	return ""
}

func checkFiles(files []string) int {
	buf := make([]byte, 1<<20)
	code := 0
	for _, path := range files {
		rb, err := readAll(path, buf)
		if err != nil {
			fmt.Printf("%s read=error(%v)\n", path, err)
			code = 1
			continue
		}
		sb, err := sendfileAll(path, buf)
		verdict := "ok"
		switch {
		case errors.Is(err, errRefused):
			verdict = "einval"
		case err != nil:
			verdict = "error(" + err.Error() + ")"
		case len(sb) == 0:
			verdict = "empty"
		default:
			if w := wrong(path, sb); w != "" {
				verdict = w
			}
		}
		fmt.Printf("%s read=%d sendfile=%s\n", path, len(rb), verdict)
	}
	return code
}

func loadFiles(files []string, d time.Duration, readers int) int {
	var reads, errs atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for i := r; time.Now().Before(deadline); i++ {
				path := files[i%len(files)]
				var b []byte
				var err error
				if i%3 == 0 {
					b, err = sendfileAll(path, buf)
					if errors.Is(err, errRefused) {
						b, err = readAll(path, buf)
					}
				} else {
					b, err = readAll(path, buf)
				}
				if err == nil {
					if w := wrong(path, b); w != "" {
						err = fmt.Errorf("%s: %s content %q", path, w, b[:min(len(b), 64)])
					}
				}
				reads.Add(1)
				if err != nil && errs.Add(1) <= 5 {
					fmt.Fprintf(os.Stderr, "procread: %v\n", err)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("reads %d errors %d\n", reads.Load(), errs.Load())
	if errs.Load() > 0 {
		return 1
	}
	return 0
}
